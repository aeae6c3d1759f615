/**
 * The cause and fix of an outcome `conflict` (a final status repeated with a different output;
 * the stored output stays), one text for the server's log line and the client's warning. It must
 * not assume two runners: the web app's cancel (POST /cancel) also finalizes every unfinished
 * stage as CANCELLED without output, and a runner that then reports that stage CANCELLED with its
 * output gets `conflict` too.
 */
export const CONFLICT_CAUSE_AND_FIX =
  'Cause: the stage was already final with another output, set earlier by a cancel (the app\'s POST /cancel stores unfinished ' +
  'stages CANCELLED without output), by another runner on the same run id, or by a run of this stage again. Fix: nothing after ' +
  'a cancel; otherwise give each execution its own run id'
