/**
 * Reading a loss.csv (as the trainers write it: a header naming `step` and `loss`, then one line per logged
 * step). A leaf module: the report and the runs UI both read loss logs with it.
 * @module
 */

/**
 * The (step, loss) pairs of a loss.csv's text, in file order; lines whose step or loss is not a finite number
 * (or is empty) are skipped. Undefined when the header has no `step` or no `loss` column.
 */
export function parseLossCsv(text: string): [number, number][] | undefined {
  const [head, ...lines] = text.trim().split("\n");
  const cols = head.split(",").map((c) => c.trim());
  const si = cols.indexOf("step"), li = cols.indexOf("loss");
  if (si < 0 || li < 0) return undefined;
  const out: [number, number][] = [];
  for (const l of lines) {
    const fields = l.split(",");
    const s = Number(fields[si]), v = Number(fields[li]);
    if (Number.isFinite(s) && Number.isFinite(v) && fields[li].trim() !== "") out.push([s, v]);
  }
  return out;
}
