// Characters a terminal acts on or that change how text reads: C0 controls
// (ESC starts cursor movement, colours, window titles), DEL, C1 controls
// (U+009B is a one-character CSI on some terminals), the Arabic letter mark,
// bidirectional marks, embeddings, overrides and isolates (which reorder
// what follows them), and the line and paragraph separators.
// biome-ignore-start lint/suspicious/noControlCharactersInRegex: matching them is the point.
const controls = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
// biome-ignore-end lint/suspicious/noControlCharactersInRegex: see above.
const hasControl = new RegExp(controls.source);
// What JSON.stringify leaves as it is among them.
const rawInJson = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Replaces the control characters of `text` (see above) with escapes as
 * JavaScript writes them (`\n`, `\t`, `\x1b`, `\u202e`), so that a stored
 * scope, key or message printed on a terminal can neither move the cursor,
 * recolour the screen nor reorder or hide what follows. Keeps `\n` when
 * `keepNewlines` is set, for multi-line output.
 */
export function escapeControls(text: string, keepNewlines = false): string {
  return text.replace(controls, (c) => (keepNewlines && c === "\n" ? c : escapeOne(c)));
}

/**
 * Quotes `text` as a JSON string, escaping the characters JSON itself leaves
 * raw too (DEL, C1 controls, bidirectional controls): for names in messages.
 */
export function quoteText(text: string): string {
  return escapeJsonControls(JSON.stringify(text));
}

/**
 * Shows `text` as it is when it is plain, else quoted with `quoteText`, so
 * that a quoted value is always an escaped one: for table cells and fields.
 */
export function displayText(text: string): string {
  return hasControl.test(text) || text.startsWith('"') ? quoteText(text) : text;
}

/** Escapes, in JSON text, the characters JSON.stringify leaves raw (see `quoteText`). */
export function escapeJsonControls(json: string): string {
  return json.replace(rawInJson, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function escapeOne(c: string): string {
  switch (c) {
    case "\n":
      return "\\n";
    case "\r":
      return "\\r";
    case "\t":
      return "\\t";
    default: {
      const code = c.charCodeAt(0);
      return code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
    }
  }
}
