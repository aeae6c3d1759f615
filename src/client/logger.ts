// One logger shape and one console logger for the client and the handlers.
export { consoleLogger, type Logger, silentLogger } from '../internal/logger.js'
