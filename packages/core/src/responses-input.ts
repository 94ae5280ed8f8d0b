// The conversation of a /v1/responses line: `input` as a text (one user message) or
// a list of message items (role and content: a string, or input_text / output_text
// parts), with `instructions` as a system message in front, as the Responses API
// reads them. Items the engine cannot honour (tool calls and their outputs, images,
// files, reasoning) are refused naming where they sit.
import { BatchgenError } from "./errors.js";

export interface ResponsesMessage {
  role: string;
  content: string;
}

const ROLES = ["user", "assistant", "system", "developer"];
const TEXT_PARTS = ["input_text", "output_text"];

function invalid(message: string, param: string, reason = "invalid_request"): BatchgenError {
  return new BatchgenError("invalid_request", message, { param, reason });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function itemContent(content: unknown, param: string): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) throw invalid(`'${param}' must be a string or an array of text parts.`, param);
  return content
    .map((part, j) => {
      const where = `${param}[${j}]`;
      if (!isObject(part)) throw invalid(`'${where}' must be an object.`, where);
      if (!TEXT_PARTS.includes(part.type as string)) {
        throw invalid(`content part type ${JSON.stringify(part.type)} is not supported; only 'input_text' and 'output_text'.`, `${where}.type`);
      }
      if (typeof part.text !== "string") throw invalid(`'${where}.text' must be a string.`, `${where}.text`);
      return part.text;
    })
    .join("");
}

/** instructions, then input, as chat messages (role "developer" read as "system"). */
export function parseResponsesInput(body: Record<string, unknown>): ResponsesMessage[] {
  const out: ResponsesMessage[] = [];
  const instructions = body.instructions ?? undefined;
  if (instructions !== undefined) {
    if (typeof instructions !== "string") throw invalid("'instructions' must be a string.", "instructions");
    out.push({ role: "system", content: instructions });
  }
  const input = body.input ?? undefined;
  if (input === undefined) throw invalid("Missing required parameter: 'input'.", "input", "missing_required_parameter");
  if (typeof input === "string") return [...out, { role: "user", content: input }];
  if (!Array.isArray(input) || input.length === 0) {
    throw invalid("'input' must be a string or a non-empty array of message items.", "input");
  }
  input.forEach((item, i) => {
    const param = `input[${i}]`;
    if (!isObject(item)) throw invalid(`'${param}' must be an object.`, param);
    if (item.type !== undefined && item.type !== "message") {
      throw invalid(`input items of type ${JSON.stringify(item.type)} are not supported; only messages.`, `${param}.type`);
    }
    if (typeof item.role !== "string" || !ROLES.includes(item.role)) {
      throw invalid(`'${param}.role' must be one of ${ROLES.join(", ")}; got ${JSON.stringify(item.role)}.`, `${param}.role`);
    }
    if (item.content === undefined || item.content === null) {
      throw invalid(`Missing required parameter: '${param}.content'.`, `${param}.content`, "missing_required_parameter");
    }
    out.push({ role: item.role === "developer" ? "system" : item.role, content: itemContent(item.content, `${param}.content`) });
  });
  return out;
}
