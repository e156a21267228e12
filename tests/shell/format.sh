# format.sh — docs/format.md checked against lrsh by an independent reader: its forward pass
# (RoPE pairs, SwiGLU, grouped KV heads, factorized linears), the generator's sliding window,
# the sampler (temperature, top_k, top_p, seeds, splitmix64) and eval's validation windows,
# written below in plain Python (no numpy), must reproduce lrsh's generated text and its eval
# loss for a factorized model with grouped KV heads, a dense one with one KV head, and the
# dense one saved as bf16. Micro models (dim 32, seq 16, vocab 300), trained a little.
. tests/shell/testlib

lrsh() { "$LRSH" --threads 1 "$@"; }

# ---- the reference: docs/format.md in Python
cat > "$TMP/ref.py" <<'PYEOF'
# docs/format.md's forward pass, sampler and eval windows in plain Python (no numpy).
import json, math, struct, sys
from array import array
from operator import mul

M64 = (1 << 64) - 1
EOS = 2   # lrsh's trained tokenizers: unk 0, bos 1, eos 2


def dot(a, b):
    return sum(map(mul, a, b))


def load(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    md = hdr.pop('__metadata__')
    T = {}
    for name, e in hdr.items():
        a, b = e['data_offsets']
        if e['dtype'] == 'F32':
            v = array('f', data[a:b])
        elif e['dtype'] == 'BF16':
            v = array('f', b''.join(b'\0\0' + data[i:i + 2] for i in range(a, b, 2)))
        else:
            continue   # tokenizer.model (U8)
        if sys.byteorder != 'little':
            v.byteswap()
        v = list(v)
        shape = e['shape']
        if len(shape) == 2:
            r, c = shape
            v = [v[i * c:(i + 1) * c] for i in range(r)]
        T[name] = v
    return json.loads(md['config']), T, md


class Model:
    def __init__(s, path):
        s.cfg, s.T, s.md = load(path)
        c = s.cfg
        s.dim, s.L, s.H, s.KV = c['dim'], c['layers'], c['heads'], c['kv_heads']
        s.hd = s.dim // s.H
        s.eps, s.theta = c['norm_eps'], c['rope_theta']
        s.freq = [s.theta ** (-2.0 * i / s.hd) for i in range(s.hd // 2)]
        s.lins = {}
        for l in range(s.L):
            for w in ('attn.wq', 'attn.wk', 'attn.wv', 'attn.wo', 'mlp.w1', 'mlp.w2', 'mlp.w3'):
                name = 'blocks.%d.%s' % (l, w)
                if name in s.T:                       # dense W: out×in, y = x·Wᵀ
                    s.lins[name] = (s.T[name], None)
                else:                                 # A: out×r, B: in×r, y = (x·B)·Aᵀ
                    B = s.T[name + '.B']
                    Bt = [list(col) for col in zip(*B)]
                    s.lins[name] = (s.T[name + '.A'], Bt)

    def lin(s, x, name):
        W, Bt = s.lins[name]
        if Bt is not None:
            x = [dot(col, x) for col in Bt]
        return [dot(row, x) for row in W]

    def rms(s, x, g):
        r = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + s.eps)
        return [v * r * gi for v, gi in zip(x, g)]

    def rope(s, v, pos):   # v: one head's hd values; pairs (2i, 2i+1)
        out = list(v)
        for i, f in enumerate(s.freq):
            c, sn = math.cos(pos * f), math.sin(pos * f)
            a, b = 2 * i, 2 * i + 1   # adjacent pairs
            x0, x1 = v[a], v[b]
            out[a], out[b] = x0 * c - x1 * sn, x0 * sn + x1 * c
        return out

    def kv_head(s, h):
        return h // (s.H // s.KV)

    def mlp(s, h, p):
        g, u = s.lin(h, p + 'mlp.w1'), s.lin(h, p + 'mlp.w3')
        return s.lin([a / (1.0 + math.exp(-a)) * b for a, b in zip(g, u)], p + 'mlp.w2')

    def forward(s, ids, last_only=False):
        """Logits for every position of ids (positions 0..n-1), or the last one only."""
        hd, n = s.hd, len(ids)
        xs = [list(s.T['embed'][t]) for t in ids]
        for l in range(s.L):
            p = 'blocks.%d.' % l
            Q, K, V = [], [], []
            for t, x in enumerate(xs):
                h = s.rms(x, s.T[p + 'attn_norm'])
                q, k, v = s.lin(h, p + 'attn.wq'), s.lin(h, p + 'attn.wk'), s.lin(h, p + 'attn.wv')
                Q.append([s.rope(q[j * hd:(j + 1) * hd], t) for j in range(s.H)])
                K.append([s.rope(k[j * hd:(j + 1) * hd], t) for j in range(s.KV)])
                V.append([v[j * hd:(j + 1) * hd] for j in range(s.KV)])
            scale = 1.0 / math.sqrt(hd)
            for t in range(n):
                o = []
                for h in range(s.H):
                    kvh = s.kv_head(h)
                    sc = [dot(Q[t][h], K[u][kvh]) * scale for u in range(t + 1)]   # causal
                    mx = max(sc)
                    e = [math.exp(z - mx) for z in sc]
                    z = sum(e)
                    o += [sum(e[u] * V[u][kvh][i] for u in range(t + 1)) / z for i in range(hd)]
                xs[t] = [a + b for a, b in zip(xs[t], s.lin(o, p + 'attn.wo'))]
                xs[t] = [a + b for a, b in zip(xs[t], s.mlp(s.rms(xs[t], s.T[p + 'mlp_norm']), p))]
        rows = xs[-1:] if last_only else xs
        out = []
        for x in rows:
            h = s.rms(x, s.T['norm'])
            out.append([dot(row, h) for row in s.T['head']])
        return out


def slide(ctx, tok, cap):
    """The generator's window after feeding tok: full (cap tokens) -> its last cap//2, then tok."""
    if len(ctx) == cap:
        ctx = ctx[len(ctx) - cap // 2:] if cap // 2 else []
    return ctx + [tok]


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def f32(x):
    return struct.unpack('f', struct.pack('f', x))[0]


def sample(logits, temp, top_k, top_p, rng):
    """One draw as generate makes it; returns (id, rng)."""
    V = len(logits)
    if temp <= 0:
        return max(range(V), key=lambda i: (logits[i], -i)), rng
    mx = max(logits)
    e = [math.exp((l - mx) / temp) for l in logits]
    tot = sum(e)
    p = [v / tot for v in e]
    cand = None
    if 0 < top_k < V:
        cand = sorted(range(V), key=lambda i: -p[i])[:top_k]
    elif top_p < 1:
        cut = (1 - top_p) / V
        cand = [i for i in range(V) if p[i] >= cut]
    rng, z = splitmix64(rng)
    r = (z >> 40) / 16777216.0
    if cand is None:
        acc = 0.0
        for i in range(V):
            acc += p[i]
            if acc > r:
                return i, rng
        return V - 1, rng
    cand.sort(key=lambda i: -p[i])
    mass = sum(p[i] for i in cand)
    nucleus = top_p * mass if 0 < top_k < V else top_p
    keep, keep_mass = len(cand), 0.0
    for j, i in enumerate(cand):
        keep_mass += p[i]
        if keep_mass >= nucleus:
            keep = j + 1
            break
    acc, target = 0.0, r * keep_mass
    for i in cand[:keep]:
        acc += p[i]
        if acc > target:
            return i, rng
    return cand[keep - 1], rng


def generate(m, prompt, n, temp=0.0, top_k=0, top_p=1.0, seed=0):
    """The ids generate draws after prompt, and the window's length after the prompt."""
    cap, ctx = m.cfg['seq'], []
    for t in prompt:
        ctx = slide(ctx, t, cap)
    encoded = len(ctx)
    rng, out = seed ^ 0x9e57a11, []
    temp, top_p = f32(temp), f32(top_p)
    while len(out) < n:
        t, rng = sample(m.forward(ctx, last_only=True)[0], temp, top_k, top_p, rng)
        if t == EOS:
            break
        out.append(t)
        ctx = slide(ctx, t, cap)
    return out, encoded


def read_cache(path):
    d = open(path, 'rb').read()
    assert d[:8] == b'LRSHTOK1', d[:8]
    version, tb, vocab, _, n = struct.unpack('<IIIIQ', d[8:32])
    ids = array('H' if tb == 2 else 'I', d[64:64 + n * tb])
    if sys.byteorder != 'little':
        ids.byteswap()
    return list(ids), tb, vocab


def eval_loss(m, cache, val, B, T, batches):
    ids, _, _ = read_cache(cache)
    n_train = int((1.0 - val) * len(ids))
    n_val = len(ids) - n_train
    rng, total = 1234 ^ 0x5eed5eed, 0.0
    for _ in range(batches):
        s = 0.0
        for _ in range(B):
            rng, z = splitmix64(rng)
            at = n_train + z % (n_val - T)
            w = ids[at:at + T + 1]
            for lg, tgt in zip(m.forward(w[:-1]), w[1:]):
                mx = max(lg)
                s += math.log(sum(math.exp(v - mx) for v in lg)) + mx - lg[tgt]
        total += s / (B * T)
    return total / batches, n_train


def lrsh_json(lrsh, commands):
    import subprocess
    r = subprocess.run([lrsh, '--threads', '1', '--json', '-q', '-c', '\n'.join(commands)], capture_output=True,
                       text=True)
    out = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    bad = [o for o in out if not o.get('ok')]
    if r.returncode or bad:
        sys.exit('lrsh failed (%d): %s %s' % (r.returncode, bad[:1], r.stderr[-300:]))
    return out


def report(name, expected, actual):
    def one_line(v):
        return str(v).replace('\n', '\\n').replace('|', '/')
    print('%s|%s|%s' % (name, one_line(expected), one_line(actual)))


# check LRSH CK CORPUS NAME: lrsh's greedy and sampled generations and its eval loss, against this file's
if __name__ == '__main__':
    lrsh, ck, corpus, name = sys.argv[1:5]
    m = Model(ck)
    prompt = 'the big dog ran to the house and the cat sat on the mat under the tree'
    gens = [  # (options, temp, top_k, top_p, seed or None: the session seed 42 + earlier calls)
        ('n=30 temp=0', 0.0, 0, 1.0, None),
        ('n=30 temp=0.9 top_k=5 top_p=0.8', 0.9, 5, 0.8, None),
        ('n=20 temp=1.2 top_k=0 top_p=0.9 seed=7', 1.2, 0, 0.9, 7),
        ('n=20 temp=1 top_k=0 top_p=1 seed=8', 1.0, 0, 1.0, 8)]
    B, batches, val = 3, 2, 0.1
    out = lrsh_json(lrsh, ['model load ' + ck, 'data load %s val=%g' % (corpus, val), 'set seed 42',
                           'tok encode "%s"' % prompt] + ['generate "%s" %s' % (prompt, g[0]) for g in gens] +
                    ['eval batches=%d batch=%d' % (batches, B)])
    data, ids, res, ev = out[1], out[3]['ids'], out[4:4 + len(gens)], out[-1]
    cap = m.cfg['seq']
    report(name + '_prompt_slides', 'yes', 'yes' if len(ids) > cap else 'no: %d tokens' % len(ids))
    texts = []
    for i, (opts, temp, k, p, seed) in enumerate(gens):
        seed = 42 + i if seed is None else seed
        got, enc = generate(m, ids, int(opts.split()[0][2:]), temp, k, p, seed)
        tag = '%s_gen%d' % (name, i)
        if temp > 0:
            report(tag + '_seed', seed, res[i]['seed'])
        report(tag + '_prompt_encoded', enc, res[i]['prompt_encoded'])
        report(tag + '_tokens', len(got), res[i]['tokens'])
        if i == 0:
            report(tag + '_window_slides', 'yes', 'yes' if enc + len(got) > cap else 'no')
        texts.append((tag, res[i]['prompt'] + res[i]['text'], ids + got))
    dec = lrsh_json(lrsh, ['model load ' + ck] + ['tok decode ' + ' '.join(map(str, t[2])) for t in texts])[1:]
    for (tag, lrsh_text, _), d in zip(texts, dec):
        report(tag + '_text', d['text'], lrsh_text)
    loss, n_train = eval_loss(m, data['cache'], val, B, cap, batches)
    report(name + '_val_split', n_train, data['train'])
    rel = abs(ev['val_loss'] - loss) / loss
    report(name + '_eval_loss', 'within 1e-4', 'within 1e-4' if rel < 1e-4 else
           'lrsh %.8g, reference %.8g' % (ev['val_loss'], loss))
PYEOF

# ---- a corpus of made-up sentences, a tokenizer, and two micro models trained a little
python3 -c '
import random
r = random.Random(5)
words = ("the a cat dog sat on mat and ran to house big small red blue green tree under over "
         "quickly slowly jumped barked said hello world model token").split()
print("\n".join(" ".join(r.choice(words) for _ in range(r.randint(4, 12))) + "." for _ in range(600)))
' > "$TMP/corpus.txt"
lrsh -q -c "tok train $TMP/corpus.txt vocab=300 out=$TMP/tok.model; data load $TMP/corpus.txt val=0.1
model new dim=32 layers=2 heads=4 kv_heads=2 ffn=64 seq=16 rank=8; optim adamw lr=0.01; set batch 4
train steps=60; model save $TMP/fact.st
model new rank=0 kv_heads=1; train steps=60; model save $TMP/dense.st; model save $TMP/dense_bf16.st dtype=bf16" \
    >"$TMP/prep.log" 2>&1 || { fail prep "$(short "$(cat "$TMP/prep.log")")"; finish; exit 1; }

# ---- each model: lrsh's generations and eval loss against the reference's
for name in fact dense dense_bf16; do
    if python3 "$TMP/ref.py" "$LRSH" "$TMP/$name.st" "$TMP/corpus.txt" "$name" >"$TMP/$name.checks" 2>"$TMP/$name.err"; then
        while IFS='|' read -r check expected actual; do
            check_eq "$check" "$expected" "$actual"
        done <"$TMP/$name.checks"
    else
        fail "${name}_reference" "$(short "$(cat "$TMP/$name.err")")"
    fi
done
check_eq format_checks_ran 57 "$(cat "$TMP"/*.checks | wc -l | tr -d ' ')"

finish
