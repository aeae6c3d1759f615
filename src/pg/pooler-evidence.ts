/**
 * The cheap half of telling a pooler from PostgreSQL, shared by the migrations' transaction-pooler
 * refusal and the LISTEN connection's delivery warning: no extra connection, no extra round trip.
 */

/**
 * Whether a connection's server process (`pg_backend_pid()`) differs from the one announced at
 * start-up (BackendKeyData, `pg`'s `client.processID`). PostgreSQL announces its own process; a
 * pooler (PgBouncer, Supavisor) announces an id of its own, so a difference means a pooler sits
 * between the app and the database. It does not tell session mode (fine for LISTEN and
 * migrations) from transaction mode: the migrations' second connection and the listener's
 * delivery check decide that.
 *
 * @returns `undefined` when the client announced nothing readable (a client that is not `pg`'s).
 */
export function announcesOtherProcess(client: unknown, backendPid: number | undefined): boolean | undefined {
  const announced = (client as { processID?: unknown } | undefined)?.processID
  if (typeof announced !== 'number' || backendPid === undefined || !Number.isFinite(backendPid)) return undefined
  return announced !== backendPid
}
