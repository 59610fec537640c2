// Runs payment-server-process.ts as CLUSTER_WORKERS (default 4) workers
// behind one port with `runCluster`, for the scale tests. Start it with
// `startServerProcess`; the workers read the same environment variables as
// payment-server-process.ts.
//
// Prints on stdout: `workers <pid>,<pid>,...` and `listening <port>` once
// every worker listens, then `exit <pid> <signal or code>` for every worker
// that exits and `forked <pid>` for every replacement. Workers' own output
// goes to stderr, so that only the cluster's `listening` line is on stdout.
// SIGTERM stops the workers gently and then the primary.
import cluster from "node:cluster";
import { fileURLToPath } from "node:url";
import { runCluster } from "../../src/server/run-cluster.js";

let ready = false;
cluster.setupPrimary({ silent: true });
cluster.on("fork", (worker) => {
  worker.process.stdout?.pipe(process.stderr);
  worker.process.stderr?.pipe(process.stderr);
  if (ready) {
    process.stdout.write(`forked ${worker.process.pid}\n`);
  }
});

await runCluster({
  exec: fileURLToPath(new URL("./payment-server-process.ts", import.meta.url)),
  args: [],
  workers: Number(process.env.CLUSTER_WORKERS ?? 4),
  respawnDelayMs: 100,
  onReady({ port, pids }) {
    ready = true;
    process.stdout.write(`workers ${pids.join(",")}\nlistening ${port}\n`);
  },
  onWorkerExit(exit) {
    process.stdout.write(`exit ${exit.pid} ${exit.signal ?? exit.code}\n`);
  },
});
