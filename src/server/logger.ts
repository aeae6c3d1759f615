// One logger shape and one console logger for the client and the handlers. `HandlerLogger` is the
// name the server modules use for it.
export { consoleLogger, type Logger as HandlerLogger, oneLine, safeLogger } from '../internal/logger.js'
