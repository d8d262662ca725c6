// Reads a pasted dotenv block the way `hush secrets import` does: KEY=value lines, an optional `export `
// prefix, `#` comments and blank lines; values bare (up to ` #`), single-quoted (as they are) or double-quoted
// (with \\ \" \n \r \t escapes, and line breaks inside); no interpolation. A key given twice is an error.

export function parseDotenv(text: string): [string, string][] {
  const out: [string, string][] = [];
  const seen = new Set<string>();
  let rest = text.replace(/^\uFEFF/, "");
  let line = 1;
  const fail = (why: string): never => {
    throw new Error(`line ${line}: ${why}`);
  };
  for (;;) {
    const trimmed = rest.replace(/^[ \t\r\n]+/, "");
    line += (rest.slice(0, rest.length - trimmed.length).match(/\n/g) ?? []).length;
    rest = trimmed;
    if (!rest) return out;
    if (rest.startsWith("#")) {
      const nl = rest.indexOf("\n");
      rest = nl < 0 ? "" : rest.slice(nl);
      continue;
    }
    const statement = rest.startsWith("export ") ? rest.slice(7) : rest;
    const eq = statement.indexOf("=");
    if (eq < 0 || statement.slice(0, eq).includes("\n")) fail("expected KEY=value");
    const key = statement.slice(0, eq).trim();
    if (!key) fail("the key is empty");
    let after = statement.slice(eq + 1).replace(/^[ \t]+/, "");
    let value: string;
    const quote = after[0];
    if (quote === "'" || quote === '"') {
      let i = 1;
      value = "";
      for (; i < after.length && after[i] !== quote; i++) {
        if (quote === '"' && after[i] === "\\" && i + 1 < after.length) {
          const c = after[++i];
          value += c === "n" ? "\n" : c === "r" ? "\r" : c === "t" ? "\t" : c === '"' || c === "\\" || c === "$" ? c : `\\${c}`;
        } else value += after[i];
      }
      if (i >= after.length) fail(`${key}: the quote is never closed`);
      after = after.slice(i + 1);
      const nl = after.indexOf("\n");
      const trailing = (nl < 0 ? after : after.slice(0, nl)).trim();
      if (trailing && !trailing.startsWith("#")) fail(`${key}: unexpected '${trailing}'`);
    } else {
      const nl = after.indexOf("\n");
      const raw = (nl < 0 ? after : after.slice(0, nl)).replace(/\r$/, "");
      const comment = raw.indexOf(" #");
      value = (comment < 0 ? raw : raw.slice(0, comment)).trimEnd();
    }
    if (seen.has(key)) fail(`${key} is given more than once`);
    seen.add(key);
    out.push([key, value]);
    line += (rest.length - after.length > 0 ? rest.slice(0, rest.length - after.length).match(/\n/g) ?? [] : []).length;
    const nl = after.indexOf("\n");
    rest = nl < 0 ? "" : after.slice(nl);
  }
}
