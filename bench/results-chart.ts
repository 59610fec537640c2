import { type BenchResults, targetConcurrency } from "./bench-results.js";

const barColors: Record<string, string> = {
  baseline: "#8a8f98",
  ours: "#2f6fdb",
  peer: "#e07b24",
};

const peers = new Set(["powertools-redis", "node-idempotency-redis"]);

/**
 * Draws calls per second of the RPC scenarios at concurrency 64 as a
 * horizontal bar chart, each bar labelled with its ratio to the baseline.
 * Store-alone scenarios count something else (store operations without RPC)
 * and stay in the table only.
 */
export function renderResultsChart(results: BenchResults): string {
  const rows = results.results.filter((r) => r.kind === "rpc" && r.concurrency === targetConcurrency);
  const width = 820;
  const labelWidth = 200;
  const valueWidth = 170;
  const barArea = width - labelWidth - valueWidth - 20;
  const rowHeight = 30;
  const top = 78;
  const height = top + rows.length * rowHeight + 36;
  const max = Math.max(1, ...rows.map((r) => Math.max(r.callsPerSecond, r.callsPerSecondSpread.q3)));
  const scale = (value: number) => Math.max(1, (value / max) * barArea);
  const bars = rows.map((r, i) => {
    const y = top + i * rowHeight;
    const barWidth = scale(r.callsPerSecond);
    // The interquartile range of the rounds, as a whisker across the bar's end.
    const q1 = labelWidth + scale(r.callsPerSecondSpread.q1);
    const q3 = labelWidth + scale(r.callsPerSecondSpread.q3);
    // baseline, baseline-twin, baseline-db...: no idempotency.
    const color = r.scenario.startsWith("baseline")
      ? barColors.baseline
      : peers.has(r.scenario)
        ? barColors.peer
        : barColors.ours;
    const value = `${Math.round(r.callsPerSecond).toLocaleString("en-US")}/s  ${r.ratioToBaseline.toFixed(2)}x`;
    return [
      `<text x="${labelWidth - 8}" y="${y + 19}" text-anchor="end">${escapeXml(r.scenario)}</text>`,
      `<rect x="${labelWidth}" y="${y + 5}" width="${barWidth.toFixed(1)}" height="${rowHeight - 10}" fill="${color}"/>`,
      `<line x1="${q1.toFixed(1)}" y1="${y + 15}" x2="${q3.toFixed(1)}" y2="${y + 15}" stroke="#222" stroke-width="1.5"/>`,
      `<text x="${(Math.max(labelWidth + barWidth, q3) + 8).toFixed(1)}" y="${y + 19}">${escapeXml(value)}</text>`,
    ].join("\n  ");
  });
  const m = results.machine;
  const { pinning } = results.settings;
  const processes =
    pinning === null
      ? "server and load generator in separate processes"
      : `server on CPU ${pinning.serverCpu}, load generator on CPU ${pinning.loadCpu}`;
  const method = `Median and interquartile range (whisker) of ${results.settings.rounds} round(s) of ${results.settings.roundMs / 1000} s, ${results.settings.protocol} binary over HTTP/2 loopback, ${processes}.`;
  const machine = `${m.cpus} x ${m.cpuModel}, Node ${m.node}, load average ${m.loadAverageBefore.toFixed(1)} at start. Ratio: median of the rounds' calls/s over the baseline's in the same round.`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="13">
  <rect width="${width}" height="${height}" fill="#ffffff"/>
  <text x="16" y="26" font-size="16" font-weight="600">CreatePayment calls per second at concurrency ${targetConcurrency}</text>
  <text x="16" y="46" font-size="11" fill="#555">${escapeXml(method)}</text>
  <text x="16" y="62" font-size="11" fill="#555">${escapeXml(machine)}</text>
  ${bars.join("\n  ")}
  <text x="16" y="${height - 12}" font-size="11" fill="#555">${escapeXml(`grey: no idempotency; blue: connect-idempotency; orange: peer libraries on Redis. Run ${results.startedAt}.`)}</text>
</svg>
`;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
