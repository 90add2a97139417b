// A sample's trace (Generator.trace) as a picture: one SVG, a cell per step in rows of COLUMNS, each
// with the five most likely tokens as bars (length: probability) labelled with their characters and
// percentages, the picked one in orange; a last cell says STOP! (or END! when the block ended) and the
// output. The seed's "Traced example" (seed/generating-text.md), drawn instead of printed.

const SVG = 'http://www.w3.org/2000/svg';
export const CELL = { width: 216, height: 166 }; // one step
export const COLUMNS = 4;
export const BAR = { x: 44, height: 17, gap: 5, top: 28, longest: 112 }; // a probability of 1 is `longest` wide
export const COLORS = { bar: '#8fa3e8', pick: '#e8590c', cell: '#ffffff', line: '#d6dbe6', text: '#1d2330', muted: '#4a5468' };

/** A probability as mgpt-generate --trace prints it (docs/sampling-controls.md): floor(100 p + 0.5)
 * followed by %, or <1% when 100 p < 0.5. */
export function percent(p) {
  return 100 * p < 0.5 ? '<1%' : `${Math.floor(100 * p + 0.5)}%`;
}

/** How a token is shown, as mgpt-generate --trace shows it: BOS for the end, a label token as
 * label 'F', a character in single quotes with JSON's escapes, except that " stays as is and ' becomes \'. */
export const shown = (char, label = undefined) => (typeof label === 'string' ? `label ${shown(label)}` : char === null ? 'BOS'
  : `'${JSON.stringify(char).slice(1, -1).replaceAll('\\"', '"').replaceAll("'", "\\'")}'`);

function node(tag, attributes, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The picture of `trace` (as Generator.trace returns it): an <svg> element. */
export function tracePicture(trace) {
  const cells = trace.steps.length + 1, rows = Math.ceil(cells / COLUMNS);
  const width = COLUMNS * CELL.width, height = rows * CELL.height;
  const svg = node('svg', { xmlns: SVG, width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': `the trace of "${trace.text}"`, 'font-family': 'system-ui, sans-serif', 'font-size': 13 });
  svg.dataset.steps = String(trace.steps.length);
  const cell = (i) => {
    const g = node('g', { transform: `translate(${(i % COLUMNS) * CELL.width} ${Math.floor(i / COLUMNS) * CELL.height})` });
    g.append(node('rect', { x: 2, y: 2, width: CELL.width - 4, height: CELL.height - 4, rx: 6, fill: COLORS.cell, stroke: COLORS.line }));
    svg.append(g);
    return g;
  };
  trace.steps.forEach((step, i) => {
    const g = cell(i);
    g.append(node('text', { x: 10, y: 19, fill: COLORS.text, 'font-weight': 600 }, `Step ${step.step}: input ${shown(step.input.char, step.input.label)}`));
    const rows = [...step.top];
    const picked = rows.some((t) => t.token === step.pick.token);
    step.top.forEach((t, j) => {
      const y = BAR.top + j * (BAR.height + BAR.gap), pick = t.token === step.pick.token;
      const w = Math.max(1, Math.round(t.p * BAR.longest));
      g.append(node('text', { x: 10, y: y + 13, fill: COLORS.text, 'font-family': 'ui-monospace, monospace' }, shown(t.char)));
      g.append(node('rect', { class: pick ? 'bar pick' : 'bar', x: BAR.x, y, width: w, height: BAR.height, fill: pick ? COLORS.pick : COLORS.bar }));
      g.append(node('text', { x: BAR.x + w + 4, y: y + 13, fill: COLORS.muted }, percent(t.p)));
    });
    const how = step.uniform === null ? 'greedy' : `random ${step.uniform.toFixed(3)}`;
    // a pick outside the five most likely is named below them
    g.append(node('text', { x: 10, y: CELL.height - 12, fill: picked ? COLORS.muted : COLORS.pick },
      `${how} → ${shown(step.pick.char)}${picked ? '' : ' (not top 5)'}`));
  });
  const end = cell(trace.steps.length);
  end.append(node('text', { x: 10, y: 30, fill: COLORS.text, 'font-weight': 600 }, trace.stopped ? 'STOP!' : 'END! (the block is full)'));
  end.append(node('text', { x: 10, y: 56, fill: COLORS.text }, `Output: "${trace.text}"`));
  if (trace.attempt !== trace.index) end.append(node('text', { x: 10, y: 80, fill: COLORS.muted }, `attempt ${trace.attempt} (${trace.attempt - trace.index} rejected before)`));
  return svg;
}
