import cliProgress from "cli-progress";

/** The figures the progress display shows. */
export interface ProgressFigures {
  /** Payments whose call finished, acknowledged or given up. */
  readonly done: number;
  /** Attempts the client repeated. */
  readonly retries: number;
  /** Calls the server answered from the idempotency store. */
  readonly replays: number;
}

/** Shows how far the load got. */
export interface DemoProgress {
  /** Shows new figures; cheap to call often. */
  update(figures: ProgressFigures): void;
  /** Shows a one-off happening, such as the server being killed. */
  note(message: string): void;
  /** Shows the final figures and ends the display. */
  stop(figures: ProgressFigures): void;
}

/** Options of `createDemoProgress`. */
export interface DemoProgressOptions {
  /** Payments asked for. */
  readonly total: number;
  /** Where to write, usually stderr, so that the report on stdout stays clean. */
  readonly stream: NodeJS.WritableStream;
  /** A live bar on a terminal; plain lines (every 10 %) elsewhere, such as CI. */
  readonly tty: boolean;
}

/** Creates the progress display: a `cli-progress` bar on a terminal, plain lines otherwise. */
export function createDemoProgress(options: DemoProgressOptions): DemoProgress {
  return options.tty ? createBar(options) : createLines(options);
}

function createBar({ total, stream }: DemoProgressOptions): DemoProgress {
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: "payments {bar} {value}/{total} | retries {retries} | replays {replays} | {note}",
      barsize: 30,
      // A hidden cursor would stay hidden if Ctrl-C ends the run mid-bar.
      hideCursor: false,
      // Redraw from update() too, not only on the timer: notes must show at once.
      forceRedraw: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { retries: 0, replays: 0, note: "" });
  return {
    update: (figures) => bar.update(figures.done, { retries: figures.retries, replays: figures.replays }),
    note: (message) => bar.update({ note: message }),
    stop(figures) {
      bar.update(figures.done, { retries: figures.retries, replays: figures.replays, note: "done" });
      bar.stop();
    },
  };
}

function createLines({ total, stream }: DemoProgressOptions): DemoProgress {
  let shownStep = 0;
  const line = (figures: ProgressFigures) =>
    `payments ${figures.done}/${total}, retries ${figures.retries}, replays ${figures.replays}\n`;
  return {
    update(figures) {
      const step = Math.floor((figures.done * 10) / total);
      if (step > shownStep && figures.done < total) {
        shownStep = step;
        stream.write(line(figures));
      }
    },
    note: (message) => stream.write(`${message}\n`),
    stop: (figures) => stream.write(line(figures)),
  };
}
