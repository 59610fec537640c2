const units: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses a duration such as `90s`, `10m`, `2h` or `7d` into milliseconds.
 * Returns undefined for anything else, so that the caller can name the
 * option in its error message.
 */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (match === null) {
    return undefined;
  }
  // The pattern only lets known units through.
  return Math.round(Number(match[1]) * (units[match[2] as string] as number));
}

/**
 * Writes a duration for people, in its two largest units: `850ms`, `42s`,
 * `12m 5s`, `3h 20m`, `2d 4h`.
 */
export function formatDuration(ms: number): string {
  const abs = Math.abs(Math.round(ms));
  if (abs < 1000) {
    return `${abs}ms`;
  }
  const parts: string[] = [];
  let rest = Math.floor(abs / 1000);
  for (const [unit, seconds] of [
    ["d", 86_400],
    ["h", 3_600],
    ["m", 60],
    ["s", 1],
  ] as const) {
    if (rest >= seconds || (parts.length > 0 && parts.length < 2)) {
      parts.push(`${Math.floor(rest / seconds)}${unit}`);
      rest %= seconds;
    }
    if (parts.length === 2) {
      break;
    }
  }
  return parts.filter((part, i) => i === 0 || !part.startsWith("0")).join(" ");
}
