/**
 * The project a pipeline belongs to: the git repository holding the pipeline file (the nearest
 * directory with a `.git` entry above it), or the file's own directory outside git. Paths a stage writes
 * outside the cache (`writes` parameters such as `publish:`) must resolve inside it.
 * @module
 */

function absolute(path: string): string {
  return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
}

/** Normalises `.` and `..` segments of an absolute path (no symlinks are followed). */
export function normalizePath(abs: string): string {
  const out: string[] = [];
  for (const part of abs.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}

/** The deepest existing ancestor of `abs` resolved through symlinks, with the rest appended. */
function realish(abs: string): string {
  const parts = normalizePath(abs).split("/").filter(Boolean);
  for (let i = parts.length; i >= 0; i--) {
    const head = "/" + parts.slice(0, i).join("/");
    try {
      const real = Deno.realPathSync(head);
      return normalizePath([real, ...parts.slice(i)].join("/"));
    } catch {
      // not there (yet): try the parent
    }
  }
  return normalizePath(abs);
}

/** The project root of a pipeline file: its git repository's root, else its directory. */
export function projectRoot(pipelineFile: string): string {
  const dir = realish(normalizePath(absolute(pipelineFile)).replace(/\/[^/]*$/, "") || "/");
  let cur = dir;
  while (true) {
    try {
      Deno.statSync(`${cur}/.git`);
      return cur;
    } catch {
      // keep looking
    }
    if (cur === "/" || cur === "") return dir;
    cur = cur.replace(/\/[^/]*$/, "") || "/";
  }
}

/** True when `path` is `root` or inside it. */
export function isInside(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith("/") ? root : root + "/");
}

/**
 * Checks a path a stage will write (resolved against the current directory, as the stage does): returns
 * the resolved path and the project root when it is outside the project, else undefined.
 */
export function checkOutsideWrite(
  value: string,
  pipelineFile: string,
): { abs: string; root: string } | undefined {
  const abs = realish(absolute(value));
  const root = projectRoot(pipelineFile);
  return isInside(abs, root) ? undefined : { abs, root };
}
