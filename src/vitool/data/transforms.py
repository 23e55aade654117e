"""Image transforms of the released code (AGW, OTLA, CAJ): ImageNet normalisation everywhere; the
test transform resizes only; the AGW training transform pads by 10, crops back, flips, and (as
AGW-for-LLCM and OTLA do) optionally erases a random rectangle; OTLA also turns visible images gray
with probability 0.5 (``grayscale``, applied to the visible rows only by the trainer). ADCA and the
unsupervised methods built on it instead copy one random R/G/B channel into all three
(``channel_exchange``, CAJ's ChannelExchange: Ye et al., ICCV 2021): an infrared camera records one
band, so a single colour channel is a closer stand-in than luminance."""

from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def test_transform(height: int, width: int):
    from torchvision import transforms

    return transforms.Compose(
        [transforms.Resize((height, width)), transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )


class ChannelExchange:
    """With probability ``p``, a PIL RGB image whose three channels are all one of its own channels, drawn
    uniformly (torch's generator, so DataLoader workers stay seeded)."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, image):
        import torch
        from PIL import Image

        if torch.rand(()) >= self.p:
            return image
        channel = image.convert("RGB").split()[int(torch.randint(3, ()))]
        return Image.merge("RGB", (channel, channel, channel))

    def __repr__(self) -> str:
        return f"ChannelExchange(p={self.p})"


def train_transform(
    height: int, width: int, erasing: float = 0.5, grayscale: float = 0.0, channel_exchange: float = 0.0
):
    from torchvision import transforms

    steps = [transforms.RandomGrayscale(grayscale)] if grayscale > 0 else []
    steps += [ChannelExchange(channel_exchange)] if channel_exchange > 0 else []
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
