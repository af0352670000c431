/** The namespace labs live in src/lab/ (shared with the demo and the benchmarks). */
export * from '../../src/lab/index.js';
