"""Saves a random VirNucPro-style classifier (a whole pickled MLPClassifier module, as
VirNucPro's train.py saves 300_model.pth/500_model.pth) with a given input width.

Used by tests/pipeline to check that predict rejects a classifier whose input width
does not match the two encoders, and by tests/gpu/run.sh for the benchmark classifier of
the published shape (3328 -> 512 -> 2, VirNucPro's train.py hidden_dim = 512).
Usage: make_classifier.py INPUT_DIM OUT.pth [HIDDEN_DIM (default 512)]"""
import sys

import torch
from torch import nn
import torch.nn.functional as F


class MLPClassifier(nn.Module):
    def __init__(self, input_dim, hidden_dim, num_class):
        super(MLPClassifier, self).__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.output_layer = nn.Linear(hidden_dim, num_class)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        x = F.relu(self.bn1(self.hidden_layer(x)))
        return self.output_layer(self.dropout(x))


if __name__ == "__main__":
    torch.manual_seed(0)
    hidden = int(sys.argv[3]) if len(sys.argv) > 3 else 512
    model = MLPClassifier(int(sys.argv[1]), hidden, 2)
    # BatchNorm statistics of a trained model, not the identity of a fresh one
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-0.05, 0.05)
        model.bn1.running_var.uniform_(0.5, 2.0)
    model = model.eval()
    torch.save(model, sys.argv[2])
