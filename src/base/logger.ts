/**
 * The slice of pino every part logs through: the agent hands each part a pino child, tests a
 * recorder or `silentLogger`. Parts that need less take a Pick of it.
 */
export interface Logger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {}, debug() {} };
