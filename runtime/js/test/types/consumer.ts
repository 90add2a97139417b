// Compiled (not run) by test/types.test.js with `tsc --strict`: an app's use of the package through
// its name, so that package.json's "exports"/"types" and index.d.ts are checked together.
import * as ort from 'onnxruntime-node';
import { Generator, ModelError, SamplingError, type GenerateOptions, type ModelInfo, type Trace } from 'mgpt';

export async function names(path: string): Promise<string[]> {
  const gen: Generator = await Generator.load(path, { ort });
  const info: ModelInfo = gen.info;
  const options: GenerateOptions = { numSamples: info.blockSize, temperature: 0.8, topK: 5, seed: 1n, prefix: 'ma' };
  const texts: string[] = await gen.generate(options);
  for await (const text of gen.samples({ numSamples: 3, seed: -1 })) texts.push(text);
  for await (const c of gen.characters({ index: 2, seed: 7 })) texts.push(c);
  const controlled = await gen.generate({ numSamples: 5, pattern: '[a-z]{4,6}(a|ie)', suffix: 'a', contains: 'l', minLength: 5,
    unique: true, exclude: ['anna'], maxAttempts: 500, seed: 2 });
  const trace: Trace = await gen.trace({ index: 1, seed: 2, unique: true });
  const firstTop: number = trace.steps[0].top[0].p;
  texts.push(...controlled, trace.text, String(firstTop), trace.steps[0].pick.char ?? 'STOP');
  const nll: number = await gen.score(texts);
  return nll > 0 ? texts : [];
}

export function isModelError(e: unknown): boolean {
  return e instanceof ModelError && e.message.length > 0;
}

export function samplesFound(e: unknown): string[] {
  return e instanceof SamplingError ? e.samples : [];
}
