#!/usr/bin/env node
// Runs the built CLI if there is one, else the TypeScript source through tsx (no build needed).
import { existsSync } from 'node:fs';
const built = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(built)) (await import('tsx/esm/api')).register();
await (await import(existsSync(built) ? built.href : new URL('../src/cli/main.ts', import.meta.url).href)).runFromBin();
