// JSON as transformers writes its config files (Python's json.dumps with indent=2
// and sorted keys): fields Python holds as floats keep their float spelling
// (10000.0, 1e-06, 0.0), which JavaScript would write as 10000, 0.000001 and 0.
const FLOAT_MARK = "\u0000pyfloat:";

/** Serializes `value` with keys sorted at every depth; numbers under a key in `floatKeys`, at any depth, are written as Python floats. */
export function toPythonJson(value: unknown, floatKeys: ReadonlySet<string>): string {
  const text = JSON.stringify(
    value,
    (key, v: unknown) => {
      if (typeof v === "number" && floatKeys.has(key)) return FLOAT_MARK + pythonFloat(v);
      if (typeof v === "object" && v !== null && !Array.isArray(v)) {
        return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      }
      return v;
    },
    2,
  );
  return text.replace(/"\\u0000pyfloat:([^"]*)"/g, "$1") + "\n";
}

/** Python's repr() of a float. */
export function pythonFloat(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (Object.is(x, -0)) return "-0.0";
  if (!Number.isFinite(x)) return x > 0 ? "Infinity" : "-Infinity";
  const abs = Math.abs(x);
  if (x !== 0 && (abs < 1e-4 || abs >= 1e16)) {
    // Python: exponent when it is below -4 or at least 16, with at least two digits.
    return x.toExponential().replace(/e([+-])(\d)$/, "e$10$2");
  }
  const s = String(x);
  return /[.e]/.test(s) ? s : `${s}.0`;
}
