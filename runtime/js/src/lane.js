// One onnxruntime run at a time per engine. onnxruntime-web's wasm instance is shared by all its
// sessions and fails (with an unhelpful message) when a second run starts before the first ends,
// which concurrent async calls would do; runs therefore queue here, per `ort` namespace. The
// uncontended path costs no extra promise.

/** @type {WeakMap<object, {busy: boolean, waiting: ((value?: unknown) => void)[]}>} */
const lanes = new WeakMap();

/** session.run(feeds), after any run of the same engine still in progress. */
export async function runInLane(ort, session, feeds) {
  let lane = lanes.get(ort);
  if (!lane) lanes.set(ort, lane = { busy: false, waiting: [] });
  if (lane.busy) await new Promise((resolve) => lane.waiting.push(resolve));
  lane.busy = true;
  try {
    return await session.run(feeds);
  } finally {
    const next = lane.waiting.shift(); // the lane passes straight to the next run, still busy
    if (next) next();
    else lane.busy = false;
  }
}
