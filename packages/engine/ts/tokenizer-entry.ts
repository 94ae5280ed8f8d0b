// "@batchgen/engine/tokenizer": the tokenizer, chat templates and the model
// generator, without the native addon (the coordinator and CLI import this).
export { Tokenizer, type EncodeOptions, type DecodeOptions, type ChatTemplateOptions } from "./tokenizer.js";
export type { ChatMessage } from "./chat-template.js";
export { makeModel, type MakeModelOptions, type MadeModel } from "./make-model.js";
export { PRESET_NAMES, type PresetName, type ModelDType, type TokenizerChoice } from "./model-presets.js";
export { EngineError, InvalidArgumentError, ModelLoadError, UnsupportedError } from "./errors.js";
export { GgufFile, findGgufFile, GGML_TYPE_NAMES, GGML_TYPE_BITS, type GgufValue, type GgufTensorInfo } from "./gguf-file.js";
