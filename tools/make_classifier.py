"""Saves a random VirNucPro-style classifier (a whole pickled MLPClassifier module, as
VirNucPro's train.py saves 300_model.pth/500_model.pth) with a given input width.

Used by tests/pipeline to check that predict rejects a classifier whose input width
does not match the two encoders. Usage: make_classifier.py INPUT_DIM OUT.pth"""
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
    model = MLPClassifier(int(sys.argv[1]), 32, 2).eval()
    torch.save(model, sys.argv[2])
