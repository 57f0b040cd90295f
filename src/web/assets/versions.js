// Versions as people read them: a version number with its record's version string and name
// (the API sends both beside every number it can), and the ordering of version strings
// (semantic versioning when both parse, plain ordering otherwise).

// "1.4.2 (main, #3)", or "#3" when no record has that number.
export function versionText(v) {
  if (!v) return "—";
  const n = `#${v.versionNumber}`;
  if (!v.version) return n;
  return v.name ? `${v.version} (${v.name}, ${n})` : `${v.version} (${n})`;
}

// The short form for charts: the version string, else the number.
export function versionShort(v) {
  return v.version || `#${v.versionNumber}`;
}

const SEMVER = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

function parseSemver(text) {
  const m = SEMVER.exec(String(text).trim());
  if (!m) return null;
  return { core: [Number(m[1]), Number(m[2]), Number(m[3])], pre: m[4] ? m[4].split(".") : [] };
}

// Pre-release identifiers: numbers below words, numbers numerically, words by code point.
function comparePre(a, b) {
  if (!a.length || !b.length) return (b.length ? 1 : 0) - (a.length ? 1 : 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (i >= a.length) return -1;
    if (i >= b.length) return 1;
    const na = /^\d+$/.test(a[i]);
    const nb = /^\d+$/.test(b[i]);
    if (na && nb && Number(a[i]) !== Number(b[i])) return Number(a[i]) < Number(b[i]) ? -1 : 1;
    if (na !== nb) return na ? -1 : 1;
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

// < 0 when version string `a` sorts below `b`, 0 when equal, > 0 above.
export function compareVersions(a, b) {
  const sa = parseSemver(a);
  const sb = parseSemver(b);
  if (sa && sb) {
    for (let i = 0; i < 3; i++) {
      if (sa.core[i] !== sb.core[i]) return sa.core[i] < sb.core[i] ? -1 : 1;
    }
    return comparePre(sa.pre, sb.pre);
  }
  if (a === b) return 0;
  return a < b ? -1 : 1;
}
