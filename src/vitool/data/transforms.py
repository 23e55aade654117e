"""Image transforms of the references (ref-otla-eval.md §1.4): ImageNet normalisation everywhere; the
test transform resizes only; the AGW training transform pads by 10, crops back, flips, and (as
AGW-for-LLCM and OTLA do) optionally erases a random rectangle; OTLA also turns visible images gray
with probability 0.5 (``grayscale``, applied to the visible rows only by the trainer)."""

from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def test_transform(height: int, width: int):
    from torchvision import transforms

    return transforms.Compose(
        [transforms.Resize((height, width)), transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )


def train_transform(height: int, width: int, erasing: float = 0.5, grayscale: float = 0.0):
    from torchvision import transforms

    steps = [transforms.RandomGrayscale(grayscale)] if grayscale > 0 else []
    steps += [
        transforms.Resize((height, width)),
        transforms.Pad(10),
        transforms.RandomCrop((height, width)),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ]
    if erasing > 0:
        steps.append(transforms.RandomErasing(p=erasing, value=0))
    return transforms.Compose(steps)
