export { type Config, defaults } from './config.js';
export { type ErrorCode, errorCodes } from './error-codes.js';
export { BatonError, SysError } from './errors.js';
export type { State } from './generation.js';
export { createLogger, type LogFormat, type Logger } from './log.js';
export { Supervisor } from './supervisor.js';
