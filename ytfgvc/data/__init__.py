"""Data for training and testing: samplers, datasets over rawframes, augmentation."""
