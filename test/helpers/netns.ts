/** The namespace lab lives with the demo (src/cli/lab.ts); tests use the same one. */
export * from '../../src/cli/lab.js';
