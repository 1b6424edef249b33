"""Differential reference for `virnucpro train`: replays a training run in PyTorch (CPU)
from what the run exported and checks the run's results.

The model is the original VirNucPro train.py's MLPClassifier (hidden_layer -> bn1 ->
ReLU -> dropout -> output_layer), CrossEntropyLoss, torch.optim.SGD(lr, momentum),
StepLR(step_size, gamma). From the run's trace (--debug-trace) it takes the initial
Linear weights, the train/validation split, each epoch's row order and the dropout keep
masks (Dropout is replaced by a multiplication with keep / (1 - p), which is what
nn.Dropout computes from its own mask). Everything else is PyTorch's.

Checks (exit 1 with a message on the first failure):
  - every epoch's row of PREFIX.log.tsv (lr, loss, val_loss, accuracy, precision,
    recall, f1, auroc) equals PyTorch's to 4 decimals (|a - b| <= 5e-5);
  - the kept epoch (lowest validation loss, early stopping with the patience) is the same;
  - PREFIX.safetensors' weights equal PyTorch's at that epoch within 1e-4 relative
    (max |a - b| <= 1e-4 * max |b| per tensor), running mean and variance within 1e-5
    (|a - b| <= 1e-5 * max(1, |b|)), num_batches_tracked exactly.
Metrics are computed here without scikit-learn: AUROC by the trapezoidal rule over the
ROC curve (a different algorithm from virnucpro's rank sum).

Usage: train_reference.py FEATURES TRACE PREFIX --lr X --momentum X --step-size N
       --gamma X --batch-size N --dropout P --patience N [--probs PROBS.f32]
--probs: also check that the kept model's eval probabilities of every row of FEATURES
(float32, row-major [N, 2], as written by the test from `predict`'s classifier code)
equal PyTorch's within 1e-5, and that PREFIX.pth loads with torch.load(weights_only=False)
with the class defined as in train.py (a whole pickled __main__.MLPClassifier), holds the
kept weights bit for bit, and gives those probabilities too.
"""
import argparse
import math
import sys

import numpy as np
import torch
from safetensors.numpy import load_file
from torch import nn
import torch.nn.functional as F


class MLPClassifier(nn.Module):
    def __init__(self, input_dim, hidden_dim, num_class):
        super(MLPClassifier, self).__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.output_layer = nn.Linear(hidden_dim, num_class)
        self.dropout = nn.Dropout(0.5)
        self.noise = None  # the keep mask / (1 - p) of the current batch (replay)

    def forward(self, x):
        x = F.relu(self.bn1(self.hidden_layer(x)))
        if self.training:
            x = x * self.noise
        return self.output_layer(x)


class TrainPyMLPClassifier(nn.Module):
    """The class exactly as the original train.py / prediction.py define it."""

    def __init__(self, input_dim, hidden_dim, num_class):
        super(TrainPyMLPClassifier, self).__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.output_layer = nn.Linear(hidden_dim, num_class)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        x = F.relu(self.bn1(self.hidden_layer(x)))
        return self.output_layer(self.dropout(x))


def load_pth(path):
    """torch.load of the original's model file, with __main__.MLPClassifier = train.py's."""
    main = sys.modules["__main__"]
    replay_cls = main.MLPClassifier
    main.MLPClassifier = TrainPyMLPClassifier
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except TypeError:  # PyTorch without the weights_only argument
            return torch.load(path, map_location="cpu")
    finally:
        main.MLPClassifier = replay_cls


def fail(msg):
    print("train_reference: FAIL: " + msg)
    sys.exit(1)


def auroc(p, y):
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    tpr, fpr, tp, fp = [0.0], [0.0], 0, 0
    for i in range(len(ps)):
        tp += ys[i]
        fp += 1 - ys[i]
        if i + 1 == len(ps) or ps[i + 1] != ps[i]:  # one ROC point per distinct score
            tpr.append(tp / pos)
            fpr.append(fp / neg)
    return float(sum((fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2 for i in range(1, len(tpr))))


def metrics(logits, y):
    loss = F.cross_entropy(logits.double(), torch.from_numpy(y).long()).item()
    probs = torch.softmax(logits, dim=1).numpy()
    call = (probs[:, 1] > probs[:, 0]).astype(np.int64)
    tp = int(((call == 1) & (y == 1)).sum())
    fp = int(((call == 1) & (y == 0)).sum())
    fn = int(((call == 0) & (y == 1)).sum())
    acc = float((call == y).mean())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0
    return [loss, acc, prec, rec, f1, auroc(probs[:, 1].astype(np.float64), y)]


def close4(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= 5e-5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("features")
    ap.add_argument("trace")
    ap.add_argument("prefix")
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--momentum", type=float, required=True)
    ap.add_argument("--step-size", type=int, required=True)
    ap.add_argument("--gamma", type=float, required=True)
    ap.add_argument("--batch-size", type=int, required=True)
    ap.add_argument("--dropout", type=float, required=True)
    ap.add_argument("--patience", type=int, required=True)
    ap.add_argument("--probs")
    a = ap.parse_args()
    torch.set_num_threads(1)

    data = load_file(a.features)
    X = torch.from_numpy(data["features"].astype(np.float32))
    Y = data["labels"].astype(np.int64)
    tr = load_file(a.trace)
    w1 = torch.from_numpy(tr["init.hidden_layer.weight"])
    hidden, width = w1.shape
    model = MLPClassifier(width, hidden, 2)
    with torch.no_grad():
        model.hidden_layer.weight.copy_(w1)
        model.hidden_layer.bias.copy_(torch.from_numpy(tr["init.hidden_layer.bias"]))
        model.output_layer.weight.copy_(torch.from_numpy(tr["init.output_layer.weight"]))
        model.output_layer.bias.copy_(torch.from_numpy(tr["init.output_layer.bias"]))
    criterion = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=a.step_size, gamma=a.gamma)
    val = tr["split.val"]
    Xv, Yv = X[val], Y[val]

    log = [line.rstrip("\n").split("\t") for line in open(a.prefix + ".log.tsv")]
    if log[0] != ["epoch", "lr", "loss", "val_loss", "accuracy", "precision", "recall", "f1", "auroc"]:
        fail("unexpected log header %r" % (log[0],))
    rows = log[1:]
    best, best_state, since, best_epoch = float("inf"), None, 0, 0
    e = 0
    while ("order.%d" % (e + 1)) in tr:
        e += 1
        order, keep = tr["order.%d" % e], tr["keep.%d" % e]
        lr_used = opt.param_groups[0]["lr"]
        model.train()
        losses = []
        for b0 in range(0, len(order), a.batch_size):
            idx = order[b0:b0 + a.batch_size]
            model.noise = torch.from_numpy(keep[b0:b0 + len(idx)].astype(np.float32)) / (1 - a.dropout)
            opt.zero_grad()
            loss = criterion(model(X[idx]), torch.from_numpy(Y[idx]))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        sched.step()
        model.eval()
        with torch.no_grad():
            m = metrics(model(Xv), Yv)
        want = [lr_used, sum(losses) / len(losses)] + m
        if e > len(rows):
            fail("the log has %d epochs; the trace has more" % len(rows))
        got = [float(v) for v in rows[e - 1][1:]]
        if int(rows[e - 1][0]) != e:
            fail("log row %d is epoch %s" % (e, rows[e - 1][0]))
        names = log[0][1:]
        for n, g, w in zip(names, got, want):
            if not close4(g, w):
                fail("epoch %d %s: virnucpro %r, PyTorch %r" % (e, n, g, w))
        print("epoch %d: %s" % (e, " ".join("%s=%.6f" % (n, w) for n, w in zip(names, want))))
        if m[0] < best or best_state is None:
            best = min(best, m[0])
            since, best_epoch = 0, e
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if since >= a.patience:
                break
    if e != len(rows):
        fail("the log has %d epochs, the replay %d" % (len(rows), e))
    kept = load_file(a.prefix + ".safetensors")
    for k, want in best_state.items():
        if k not in kept:
            fail("%s.safetensors lacks %s" % (a.prefix, k))
        got = torch.from_numpy(np.asarray(kept[k]))
        if k.endswith("num_batches_tracked"):
            if int(got) != int(want):
                fail("%s: %d, PyTorch %d" % (k, int(got), int(want)))
            continue
        diff = (got.double() - want.double()).abs()
        if "running" in k:
            lim = 1e-5 * torch.clamp(want.double().abs(), min=1.0)
            worst = (diff / lim).max().item()
            ok = worst <= 1.0
        else:
            scale = want.double().abs().max().item()
            worst = diff.max().item() / scale
            ok = worst <= 1e-4
        print("%s: worst %s %.3g" % (k, "fraction of 1e-5" if "running" in k else "relative", worst))
        if not ok:
            fail("%s differs from PyTorch's (%.3g)" % (k, worst))
    if a.probs:
        model.load_state_dict(best_state)
        model.eval()
        with torch.no_grad():
            want = torch.softmax(model(X), dim=1).numpy()
        got = np.fromfile(a.probs, dtype="<f4").reshape(-1, 2)
        d = np.abs(got - want).max()
        print("probabilities of the kept model: max |diff| %.3g" % d)
        if got.shape != want.shape or d > 1e-5:
            fail("predict's probabilities differ from PyTorch's by %.3g" % d)
        pth = load_pth(a.prefix + ".pth")
        if type(pth) is not TrainPyMLPClassifier:
            fail("%s.pth holds a %s, not an MLPClassifier" % (a.prefix, type(pth)))
        sd = pth.state_dict()
        if list(sd) != list(best_state):
            fail("%s.pth's state_dict names %r" % (a.prefix, list(sd)))
        for k, v in sd.items():
            if not torch.equal(v, torch.from_numpy(np.asarray(kept[k]))):
                fail("%s.pth's %s differs from %s.safetensors'" % (a.prefix, k, a.prefix))
        if abs(pth.bn1.eps - 1e-5) > 0 or pth.bn1.momentum != 0.1 or pth.dropout.p != a.dropout:
            fail("%s.pth: eps %r, momentum %r, dropout %r" % (a.prefix, pth.bn1.eps, pth.bn1.momentum, pth.dropout.p))
        pth.eval()
        with torch.no_grad():
            pp = torch.softmax(pth(X), dim=1).numpy()
        d = np.abs(got - pp).max()
        print("probabilities of the .pth in PyTorch vs predict: max |diff| %.3g" % d)
        if d > 1e-5:
            fail("the .pth's probabilities in PyTorch differ from predict's by %.3g" % d)
    print("train_reference: OK (%d epochs, kept epoch %d)" % (e, best_epoch))


if __name__ == "__main__":
    main()
