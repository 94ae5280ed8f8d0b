// The model's vocabulary as byte strings, which the grammar walks: each token id
// decoded to its bytes once per tokenizer.
//
// From tokenizer.json: a ByteLevel decoder (GPT-2, Llama 3, Qwen2) maps each
// character of a token back to its byte through GPT-2's byte-to-unicode table;
// otherwise (SentencePiece style: Gemma, Llama 2, Mistral) "\u2581" is a space and
// <0xHH> byte-fallback tokens are the byte HH. Special added tokens (<bos>,
// <end_of_turn>, ...) have no bytes: the grammar never picks them (end-of-sequence
// ids are allowed separately, once the value is complete).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace bg {
namespace grammar {

struct TokenVocab {
  std::vector<std::string> bytes;                     // [vocab]; empty = never by grammar
  std::array<std::vector<int32_t>, 256> by_first;     // ids whose first byte is b
  std::vector<uint8_t> plain_tail;                    // bytes[1..] hold no '"', '\\' or control byte
  int32_t size() const { return int32_t(bytes.size()); }
};

// Builds the indexes; `bytes` has one entry per token id (vocab_size of the model).
TokenVocab token_vocab_make(std::vector<std::string> bytes);

// Reads a tokenizer.json. Throws EngineError(unsupported) when there is
// none or its model type is not BPE / Unigram.
std::vector<std::string> token_bytes_from_tokenizer_json(const std::string& path, int32_t vocab_size);

// The same from a GGUF file's tokenizer.ggml.tokens (tokenizer.ggml.model "gpt2" is
// byte-level, otherwise SentencePiece style); control, unknown and unused tokens
// have no bytes, user-defined ones are their text.
std::vector<std::string> token_bytes_from_gguf(const std::string& path, int32_t vocab_size);

}  // namespace grammar
}  // namespace bg
