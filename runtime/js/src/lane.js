// One onnxruntime run at a time per engine. onnxruntime-web's wasm instance is shared by all its
// sessions and fails (with an unhelpful message) when a second run starts before the first ends,
// which concurrent async calls would do; runs therefore queue here, per `ort` namespace. The
// uncontended path costs no extra promise.

/** @type {WeakMap<object, {busy: boolean, waiting: ((value?: unknown) => void)[]}>} */
const lanes = new WeakMap();

/** session.run(feeds) without log lines, after any run of the same engine still in progress. */
export async function runInLane(ort, session, feeds) {
  let lane = lanes.get(ort);
  if (!lane) lanes.set(ort, lane = { busy: false, waiting: [] });
  if (lane.busy) await new Promise((resolve) => lane.waiting.push(resolve));
  lane.busy = true;
  try {
    // the run's own log threshold: onnxruntime-web prints a failing kernel's error to stderr (or the
    // console) whatever the session's logSeverityLevel, and failures become ModelErrors anyway; a
    // fresh object, as onnxruntime-web fills in the options' other fields
    return await session.run(feeds, { logSeverityLevel: 4 });
  } finally {
    const next = lane.waiting.shift(); // the lane passes straight to the next run, still busy
    if (next) next();
    else lane.busy = false;
  }
}
