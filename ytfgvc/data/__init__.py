"""Data for training and testing: samplers, datasets over rawframes, augmentation."""

import warnings

# torchvision 0.29 deprecates its JPEG codecs in favour of TorchCodec; they remain the
# decoder used here (libjpeg-turbo, in the loader workers) until TorchCodec is a dependency.
warnings.filterwarnings(
    "ignore", message="The image decoding and encoding capabilities of TorchVision", category=DeprecationWarning
)
