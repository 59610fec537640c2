// Prints deriveRequestId for the JSON array of inputs in argv[2], one key a
// line, so that tests can compare derivations across processes.
import { type DerivedKeyInput, deriveRequestId } from "../../../src/server/derived-key.js";

const inputs = JSON.parse(process.argv[2] ?? "[]") as DerivedKeyInput[];
process.stdout.write(inputs.map((input) => `${deriveRequestId(input)}\n`).join(""));
