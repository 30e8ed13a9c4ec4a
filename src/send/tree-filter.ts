// --exclude / --include for `send -r`, with rsync's rules as far as they go here: the rules
// apply in the order given and the first that matches a path decides (none: it is sent); a
// pattern without a slash matches a name at any depth, one with a slash the path below the
// directory being sent (a leading slash anchors it there); a trailing slash matches
// directories only; an excluded directory is not entered. Globs are picomatch's, with `*`
// matching dotfiles as rsync's does.
import picomatch from 'picomatch';

export interface FilterRule {
  include: boolean;
  pattern: string;
}

/** Whether to send the entry at `path` (relative to the directory being sent, `/`-separated). */
export type TreeFilter = (path: string, isDirectory: boolean) => boolean;

export function treeFilter(rules: FilterRule[]): TreeFilter | undefined {
  if (rules.length === 0) return undefined;
  const compiled = rules.map(({ include, pattern }) => {
    const directoryOnly = pattern.endsWith('/');
    const body = pattern.replace(/\/+$/, '');
    const anchored = body.startsWith('/');
    const glob = body.replace(/^\/+/, '');
    const matches = picomatch(glob, { dot: true, basename: !anchored && !glob.includes('/') });
    return { include, directoryOnly, matches };
  });
  return (path, isDirectory) => {
    for (const rule of compiled) {
      if (rule.directoryOnly && !isDirectory) continue;
      if (rule.matches(path)) return rule.include;
    }
    return true;
  };
}

/** The --include and --exclude rules in the order they were given on the command line. */
export function filterRules(argv: string[]): FilterRule[] {
  const rules: FilterRule[] = [];
  const end = argv.indexOf('--');
  const options = end === -1 ? argv : argv.slice(0, end);
  for (let i = 0; i < options.length; i++) {
    const match = /^--(include|exclude)(?:=(.*))?$/.exec(options[i] as string);
    if (match === null) continue;
    const pattern = match[2] ?? options[++i];
    if (pattern !== undefined) rules.push({ include: match[1] === 'include', pattern });
  }
  return rules;
}
