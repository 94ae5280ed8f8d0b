// Lines of a byte stream with their byte ranges, without ever holding more than one line
// (of at most maxLineBytes) in memory: a longer line is skipped to its end and reported
// as too long. Lines must be valid UTF-8: one that is not is given with text null and
// invalidUtf8 set (never decoded with replacement characters, which could change a
// custom_id without anyone noticing).
import { isUtf8 } from "node:buffer";

export interface SplitLine {
  /** 1-based line number. */
  number: number;
  /** Byte offset of the line's first byte. */
  start: number;
  /** Byte offset just past the line's "\n" (or the end of the stream). */
  end: number;
  /** The line without "\n" / "\r\n"; null when it is longer than maxLineBytes or not valid UTF-8. */
  text: string | null;
  /** Set (true) when the line's bytes are not valid UTF-8. */
  invalidUtf8?: true;
  /** Length of the line in bytes without its line break. */
  bytes: number;
}

const NL = 0x0a;
const CR = 0x0d;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

export async function* splitLines(
  source: AsyncIterable<Uint8Array | string>,
  maxLineBytes: number,
): AsyncGenerator<SplitLine> {
  let pieces: Buffer[] = [];
  let pieceBytes = 0;
  let tooLong = false;
  let lineStart = 0;
  let offset = 0; // bytes consumed before the current chunk
  let number = 0;
  let first = true;

  const finish = (end: number, lineBytes: number): SplitLine => {
    number++;
    let text: string | null = null;
    let invalid = false;
    let bytes = lineBytes;
    if (!tooLong) {
      let buf = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, pieceBytes);
      if (buf.length > 0 && buf[buf.length - 1] === CR) buf = buf.subarray(0, buf.length - 1);
      bytes = buf.length;
      if (bytes <= maxLineBytes) {
        if (isUtf8(buf)) text = buf.toString("utf8");
        else invalid = true;
      }
    }
    const line: SplitLine = { number, start: lineStart, end, text, bytes };
    if (invalid) line.invalidUtf8 = true;
    pieces = [];
    pieceBytes = 0;
    tooLong = false;
    lineStart = end;
    return line;
  };

  const take = (chunk: Buffer, from: number, to: number): void => {
    if (to <= from) return;
    if (tooLong) {
      pieceBytes += to - from;
      return;
    }
    pieceBytes += to - from;
    // +1: a trailing "\r" is not part of the line's length.
    if (pieceBytes > maxLineBytes + 1) {
      tooLong = true;
      pieces = [];
      return;
    }
    pieces.push(chunk.subarray(from, to));
  };

  // The first bytes are held until there are 3 of them: a BOM may arrive split across chunks.
  let head: Buffer | null = Buffer.alloc(0);
  const chunks = async function* (): AsyncGenerator<Buffer> {
    for await (const raw of source) {
      const chunk = typeof raw === "string" ? Buffer.from(raw, "utf8") : Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
      if (head === null) {
        yield chunk;
        continue;
      }
      head = Buffer.concat([head, chunk]);
      if (head.length < BOM.length) continue;
      const whole: Buffer = head;
      head = null;
      yield whole;
    }
    if (head !== null && head.length > 0) yield head;
  };

  for await (let chunk of chunks()) {
    if (first && chunk.length > 0) {
      first = false;
      if (chunk.subarray(0, 3).equals(BOM)) {
        chunk = chunk.subarray(3);
        offset += 3;
        lineStart = 3;
      }
    }
    let pos = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(NL, pos);
      if (nl < 0) {
        take(chunk, pos, chunk.length);
        break;
      }
      take(chunk, pos, nl);
      const lineBytes = pieceBytes;
      yield finish(offset + nl + 1, lineBytes);
      pos = nl + 1;
    }
    offset += chunk.length;
  }
  if (pieceBytes > 0 || tooLong) yield finish(offset, pieceBytes);
}
