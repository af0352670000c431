/** The slice of pino the route sources use, so tests can pass a recorder and the agent its pino. */
export interface Logger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

export const silentLogger: Logger = { info() {}, warn() {}, debug() {} };
