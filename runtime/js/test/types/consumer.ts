// Compiled (not run) by test/types.test.js with `tsc --strict`: an app's use of the package through
// its name, so that package.json's "exports"/"types" and index.d.ts are checked together.
import * as ort from 'onnxruntime-node';
import { Generator, ModelError, type GenerateOptions, type ModelInfo } from 'mgpt';

export async function names(path: string): Promise<string[]> {
  const gen: Generator = await Generator.load(path, { ort });
  const info: ModelInfo = gen.info;
  const options: GenerateOptions = { numSamples: info.blockSize, temperature: 0.8, topK: 5, seed: 1n, prefix: 'ma' };
  const texts: string[] = await gen.generate(options);
  for await (const text of gen.samples({ numSamples: 3, seed: -1 })) texts.push(text);
  for await (const c of gen.characters({ index: 2, seed: 7 })) texts.push(c);
  const nll: number = await gen.score(texts);
  return nll > 0 ? texts : [];
}

export function isModelError(e: unknown): boolean {
  return e instanceof ModelError && e.message.length > 0;
}
