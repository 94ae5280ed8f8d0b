#!/usr/bin/env node
import { runCli } from "./program.js";

const code = await runCli(process.argv.slice(2));
// `up`, `coordinator` and `worker` return when stopped; exit so nothing keeps running.
process.exit(code);
