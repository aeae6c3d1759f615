// Generated from package.json by scripts/write-package-info.mjs (npm run build runs it); do not edit.

/** The package's name, from package.json. */
export const PACKAGE_NAME = 'pipeline-status-sdk'

/** The package's version, from package.json. */
export const PACKAGE_VERSION = '0.1.0'
