#!/usr/bin/env node
// The protoc plugin binary. Add it to buf.gen.yaml after protoc-gen-es:
//
//   - local: protoc-gen-connect-idempotency
//     out: gen
//     opt: [target=ts, import_extension=js]

import { runNodeJs } from "@bufbuild/protoplugin";
import { createConnectIdempotencyPlugin } from "./connect-idempotency-plugin.js";

runNodeJs(createConnectIdempotencyPlugin());
