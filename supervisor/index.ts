export { Supervisor } from './supervisor.js';
export { BatonError, SysError } from './errors.js';
export { errorCodes, type ErrorCode } from './error-codes.js';
export { createLogger, type Logger, type LogFormat } from './log.js';
export { defaults, type Config } from './config.js';
export type { State } from './generation.js';
