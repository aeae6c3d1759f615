import { DEFAULT_STAGES, type StageCatalogue } from 'pipeline-status-sdk'

/**
 * The pipeline's stages, shared by the route handlers (which refuse other stage numbers and
 * complete the run with the last one) and the run page (which lists them before they report).
 * The runner must use the same catalogue.
 */
export const stages: StageCatalogue = DEFAULT_STAGES
