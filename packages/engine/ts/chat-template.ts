// A model's chat template (Jinja, from tokenizer_config.json or chat_template.jinja),
// rendered with @huggingface/jinja the way transformers' apply_chat_template renders
// it: the same variables (messages, add_generation_prompt, tools, documents, the
// special tokens by name), the same errors (raise_exception's message), and
// Python's whitespace where JavaScript's differs.
//
// That last point: Jinja's `trim` filter and str.strip() use Python's whitespace,
// which includes \x1c-\x1f and \x85 but not U+FEFF; JavaScript's trim() is the
// other way round. A byte-order mark at the start of a prompt is common enough in
// uploaded files that the difference would change tokens, so the parsed template
// has those calls replaced by one that strips Python's set.
import { Template } from "@huggingface/jinja";

import { InvalidArgumentError } from "./errors.js";

export interface ChatMessage {
  role: "system" | "user" | "assistant" | string;
  content: string | Array<{ type: "text"; text: string } | Record<string, unknown>>;
}

export interface ChatTemplateRenderOptions {
  addGenerationPrompt?: boolean;
  /** bos_token, eos_token, ... as the template names them. */
  specialTokens?: Record<string, string>;
}

const STRIP_FUNCTION = "__batchgen_python_strip";
const PYTHON_WHITESPACE = new Set(
  [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000]
    .concat(Array.from({ length: 11 }, (_, i) => 0x2000 + i))
    .map((c) => String.fromCodePoint(c)),
);

export class ChatTemplate {
  private constructor(
    readonly source: string,
    private readonly template: Template,
  ) {}

  /** Parses a template. Throws a plain Error with the parser's message when it cannot. */
  static compile(source: string): ChatTemplate {
    const template = new Template(source);
    template.parsed = rewritePythonStrips(template.parsed) as typeof template.parsed;
    return new ChatTemplate(source, template);
  }

  /** Renders a conversation. Throws InvalidArgumentError for a conversation the template refuses. */
  render(messages: ChatMessage[], options: ChatTemplateRenderOptions = {}): string {
    if (!Array.isArray(messages) || messages.length === 0) {
      throw new InvalidArgumentError("messages: cannot apply the chat template to an empty conversation");
    }
    for (const [i, m] of messages.entries()) {
      if (typeof m !== "object" || m === null || typeof m.role !== "string") {
        throw new InvalidArgumentError(`messages[${i}]: must be an object with a string role`);
      }
    }
    try {
      return this.template.render({
        ...(options.specialTokens ?? {}),
        messages: JSON.parse(JSON.stringify(messages)) as unknown,
        add_generation_prompt: options.addGenerationPrompt ?? false,
        tools: null,
        documents: null,
        [STRIP_FUNCTION]: pythonStrip,
      });
    } catch (err) {
      throw new InvalidArgumentError(`chat template: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

/**
 * Replaces `x | trim`, `x.strip()`, `x.lstrip()` and `x.rstrip()` (with or without a
 * chars argument) in a parsed template by calls to STRIP_FUNCTION. The interpreter
 * dispatches on each node's `type`, so plain objects stand in for the AST classes,
 * which the package does not export.
 */
function rewritePythonStrips(node: unknown): unknown {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) node[i] = rewritePythonStrips(node[i]);
    return node;
  }
  if (node instanceof Map) {
    const entries = [...node.entries()].map(([k, v]) => [rewritePythonStrips(k), rewritePythonStrips(v)] as const);
    node.clear();
    for (const [k, v] of entries) node.set(k, v);
    return node;
  }
  if (typeof node !== "object" || node === null) return node;
  const n = node as Record<string, unknown>;
  for (const key of Object.keys(n)) n[key] = rewritePythonStrips(n[key]);

  const call = (args: unknown[]): unknown => ({
    type: "CallExpression",
    callee: { type: "Identifier", value: STRIP_FUNCTION },
    args,
  });
  const literal = (value: string): unknown => ({ type: "StringLiteral", value });
  if (n.type === "FilterExpression") {
    const filter = n.filter as Record<string, unknown> | undefined;
    if (filter?.type === "Identifier" && filter.value === "trim") return call([n.operand, literal("both"), literal("filter")]);
  }
  if (n.type === "CallExpression") {
    const callee = n.callee as Record<string, unknown> | undefined;
    const property = callee?.property as Record<string, unknown> | undefined;
    const args = n.args as unknown[];
    const side = { strip: "both", lstrip: "left", rstrip: "right" }[String(property?.value)];
    if (callee?.type === "MemberExpression" && callee.computed === false && property?.type === "Identifier" && side &&
        Array.isArray(args) && args.length <= 1) {
      return call([callee.object, literal(side), literal(String(property?.value)), ...args]);
    }
  }
  return n;
}

/**
 * Python's str.strip / lstrip / rstrip (`form` is the method's name), and Jinja's
 * trim filter (`form` "filter"), which stringifies scalars first.
 */
function pythonStrip(value: unknown, side: string, form: string, chars?: unknown): string {
  let text: string;
  if (typeof value === "string") {
    text = value;
  } else if (form !== "filter") {
    // Jinja's wording for a method a value lacks.
    const kind = Array.isArray(value) ? "list" : Number.isInteger(value) ? "int" : typeof value === "number" ? "float"
      : typeof value === "boolean" ? "bool" : value === null ? "NoneType" : "dict";
    throw new Error(`'${kind} object' has no attribute '${form}'`);
  } else if (value === undefined) {
    text = "";
  } else if (typeof value === "number" || typeof value === "boolean" || value === null) {
    text = value === null ? "None" : typeof value === "boolean" ? (value ? "True" : "False") : String(value);
  } else {
    throw new Error("the trim filter needs a string, not a list or mapping");
  }
  const points = Array.from(text);
  const strip =
    typeof chars === "string" ? new Set(Array.from(chars)) : PYTHON_WHITESPACE; // None or absent: whitespace
  let start = 0;
  let end = points.length;
  if (side !== "right") while (start < end && strip.has(points[start] as string)) start++;
  if (side !== "left") while (end > start && strip.has(points[end - 1] as string)) end--;
  return points.slice(start, end).join("");
}
