/**
 * The one fixture of the contract suite: a target started per scenario with the scenario's
 * options, its answers checked against the OpenAPI document, closed when the scenario ends.
 */
import { expect, it } from 'vitest'
import { Api, checkingAnswers, type Completion, type ContractTarget, type TargetOptions } from './harness.js'

/** What each block of the suite registers its scenarios with. */
export interface ContractContext {
  /** The target's name, the first part of every block's title. */
  readonly name: string
  /** How requests reach the handlers (see {@link ContractTarget.transport}). */
  readonly transport: NonNullable<ContractTarget['transport']>
  /** An Express app over a socket, which can mount a body parser before the router. */
  readonly expressApp: boolean
  /** Runs `fn` with an {@link Api} on handlers started with `options`, then closes them. */
  withApi<T>(options: TargetOptions, fn: (api: Api) => Promise<T>): Promise<T>
  /** One test: `fn` with an {@link Api} on handlers started with `options`. */
  scenario(title: string, fn: (api: Api) => Promise<void>, options?: TargetOptions): void
  /** A scenario that needs a real port; registered on the socket targets only. */
  socketScenario(title: string, fn: (api: Api, baseUrl: string) => Promise<void>, options?: TargetOptions): void
  /** What the default `onRunCompleted` hook recorded for a run. */
  completionsOf(runId: string): Completion[]
}

/**
 * The context of one target: every scenario starts its own handlers (with `onRunCompleted`
 * recorded unless the scenario brings its own) and closes them, so no `beforeEach` is needed.
 * `target` is read when a scenario starts, so a target file may build it in its `beforeAll`.
 */
export function useTarget(name: string, target: () => ContractTarget): ContractContext {
  const completions: Completion[] = []
  const recorder: NonNullable<TargetOptions['onRunCompleted']> = (_tx, run, payload) => {
    completions.push({ runId: run.id, status: run.status, payload })
  }
  const completionsOf = (runId: string) => completions.filter((c) => c.runId === runId)

  async function withApi<T>(options: TargetOptions, fn: (api: Api) => Promise<T>): Promise<T> {
    const client = checkingAnswers(await target().start({ onRunCompleted: recorder, ...options }))
    try {
      return await fn(new Api(client))
    } finally {
      await client.close()
    }
  }
  const scenario = (title: string, fn: (api: Api) => Promise<void>, options: TargetOptions = {}) =>
    void it(title, () => withApi(options, fn))

  const transport = target().transport ?? 'fetch'
  const socketScenario = (title: string, fn: (api: Api, baseUrl: string) => Promise<void>, options: TargetOptions = {}) => {
    if (transport !== 'socket') return
    scenario(title, (api) => fn(api, api.client.baseUrl ?? expect.unreachable('a socket target has a baseUrl')), options)
  }
  return { name, transport, expressApp: target().expressApp === true, withApi, scenario, socketScenario, completionsOf }
}
