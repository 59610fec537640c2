// `npm start`: exactly-once payments over a hostile network. See docs/demo.md.
import { once } from "node:events";
import { parseDemoArgs } from "./demo-options.js";

const parsed = parseDemoArgs(process.argv.slice(2), {
  writeOut: (text) => process.stdout.write(text),
  writeErr: (text) => process.stderr.write(text),
});
try {
  // The rest is loaded only when needed, so that --help and bad flags answer at once.
  if (parsed.kind === "exit") {
    process.exitCode = parsed.status;
  } else if (parsed.options.serve) {
    const { serveDemo } = await import("./serve-demo.js");
    const stopped = Promise.race([once(process, "SIGINT"), once(process, "SIGTERM")]);
    await serveDemo(parsed.options, process.stdout, stopped);
  } else {
    const { runDemo } = await import("./run-demo.js");
    process.exitCode = await runDemo(parsed.options, {
      stdout: process.stdout,
      stderr: process.stderr,
      tty: process.stderr.isTTY === true,
    });
  }
} catch (err) {
  // Such as a port in use or a data folder that cannot be written.
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
