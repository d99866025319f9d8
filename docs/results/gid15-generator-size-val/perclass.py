"""Per-class radiometry summary of an evaluation.json: pixel-weighted mean |Δ mean| and |std error| over classes."""
import json, sys
for path in sys.argv[1:]:
    d = json.load(open(path))
    for e in d['checkpoints']:
        r = e['radiometry']
        tot = sum(c['real_pixels'] for c in r['classes'])
        wm = sum(c['real_pixels'] * sum(abs(b['mean_error_dn']) for b in c['bands']) / len(c['bands']) for c in r['classes']) / tot
        ws = sum(c['real_pixels'] * sum(abs(b['std_error_pct']) for b in c['bands']) / len(c['bands']) for c in r['classes']) / tot
        u = r['unknown']['bands']
        um = " / ".join("%+.1f" % b["mean_error_dn"] for b in u)
        us = " / ".join("%+.0f" % b["std_error_pct"] for b in u)
        print(f"| {e['label']} | {wm:.1f} | {ws:.0f} | {um} | {us} |")
