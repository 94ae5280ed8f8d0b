// Content-Disposition for a download (RFC 6266): an ASCII `filename` for old clients and
// the exact name as `filename*` in RFC 5987's UTF-8 percent-encoding, so a name with
// non-ASCII characters, quotes or control characters never makes an invalid header.

/** RFC 5987 attr-char: ALPHA / DIGIT / "!#$&+-.^_`|~"; everything else is %-encoded. */
const ATTR_CHAR = /[A-Za-z0-9!#$&+\-.^_`|~]/;

function encodeRfc5987(value: string): string {
  let out = "";
  for (const byte of Buffer.from(value, "utf8")) {
    const c = String.fromCharCode(byte);
    out += byte < 0x80 && ATTR_CHAR.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** `attachment; filename="..."; filename*=UTF-8''...` for any file name. */
export function contentDisposition(filename: string): string {
  // Printable ASCII without the two characters a quoted-string escapes; others become "_".
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, "_");
  const plain = `attachment; filename="${ascii}"`;
  return ascii === filename ? plain : `${plain}; filename*=UTF-8''${encodeRfc5987(filename)}`;
}
