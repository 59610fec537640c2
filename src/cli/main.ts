#!/usr/bin/env node
// The connect-idempotency command line. Each subcommand lives in its own
// file and adds itself with an `add<Name>Command(program)` function.

import { Command, CommanderError } from "commander";
import { addAdminCommands } from "./admin-commands.js";
import { addLintCommand } from "./lint-command.js";
import { addMethodsCommand } from "./methods-command.js";

const program = new Command("connect-idempotency")
  .description("Tools for connect-idempotency: exactly-once mutating RPCs for Connect and gRPC.")
  // Subcommands inherit this when added with program.command(): usage errors
  // throw instead of exiting, so that they exit with status 2 below.
  .exitOverride();

addLintCommand(program);
addAdminCommands(program);
addMethodsCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (!(error instanceof CommanderError)) {
    throw error;
  }
  // Help and version exit 0; every usage error is bad input.
  process.exitCode = error.exitCode === 0 ? 0 : 2;
}
