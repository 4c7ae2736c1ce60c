// The logger the git proxy writes to: the four levels it uses, in the shape
// pino's (and so fastify's) logger already has, so `app.log.child(...)` is
// passed as it is, without a cast. Tests and library use get silentLogger.

type LogFn = (obj: object | string, msg?: string) => void;

export interface GitLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

export const silentLogger: GitLogger = { debug() {}, info() {}, warn() {}, error() {} };
