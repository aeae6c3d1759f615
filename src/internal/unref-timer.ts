/**
 * Lets a Node.js timer run without keeping the process alive, and returns it. Where a timer is a
 * number (browsers, edge runtimes) there is nothing to release and it is returned unchanged.
 * Internal.
 */
export function unrefTimer<Timer>(timer: Timer): Timer {
  if (typeof timer === 'object' && timer !== null && 'unref' in timer && typeof timer.unref === 'function') timer.unref()
  return timer
}
