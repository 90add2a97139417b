// mgpt's runtime in JavaScript: sample from an mgpt .onnx step graph with onnxruntime (web or node),
// drawing the same samples as mgpt.runtime in Python for the same seed.

export { Generator, DEFAULT_BATCH_SIZE, SamplingError, defaultMaxAttempts } from './generator.js';
export { PatternError, fullmatch } from './constraints.js';
export { ModelError } from './modelfile.js';
export { Vocab, VocabError } from './vocab.js';
export { FORMAT, FORMAT_VERSION, modelInfo } from './metadata.js';
export { readModel } from './protobuf.js';
export { DrawScratch, drawOne, sampleUniforms, seedBits } from './sampling.js';
