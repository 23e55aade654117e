"""Image transforms of the released code (AGW, OTLA, CAJ): ImageNet normalisation everywhere; the
test transform resizes only; the AGW training transform pads by 10, crops back, flips, and (as
AGW-for-LLCM and OTLA do) optionally erases a random rectangle; OTLA also turns visible images gray
with probability 0.5 (``grayscale``, applied to the visible rows only by the trainer). ADCA and the
unsupervised methods built on it instead copy one random R/G/B channel into all three
(``channel_exchange``, CAJ's ChannelExchange: Ye et al., ICCV 2021): an infrared camera records one
band, so a single colour channel is a closer stand-in than luminance. The Cluster-Contrast-derived
methods (PCLHD, MULT, WSL) erase with CAJ's ChannelRandomErasing (a light grey over up to 40% of the
image) and give infrared images CAJ's ChannelAdapGray."""

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


ERASING_STYLES = ("torchvision", "channel")
REID_ERASING_FILL = (0.4914, 0.4822, 0.4465)  # Zhong et al.'s fill, written into the normalised tensor


class ChannelRandomErasing:
    """Random erasing as the Cluster-Contrast-derived repositories (PCLHD, MULT, WSL) do it, after
    normalisation: with probability ``p``, a rectangle of U(0.02, 0.4) of the image's area and aspect
    U(0.3, 1/0.3) (up to 100 tries to fit one) is filled with (0.4914, 0.4822, 0.4465) per channel, in
    normalised units (a light grey). torchvision's RandomErasing, the other ``erasing_style``, fills 0
    (the ImageNet mean colour) over at most a third of the area."""

    def __init__(self, p: float, area: tuple[float, float] = (0.02, 0.4), min_aspect: float = 0.3) -> None:
        self.p, self.area, self.min_aspect = p, area, min_aspect

    def __call__(self, image):
        import torch

        if torch.rand(()) >= self.p:
            return image
        _, height, width = image.shape
        for _ in range(100):
            low, high = self.area
            target = float(torch.empty(()).uniform_(low, high)) * height * width
            aspect = float(torch.empty(()).uniform_(self.min_aspect, 1 / self.min_aspect))
            h, w = round((target * aspect) ** 0.5), round((target / aspect) ** 0.5)
            if w < width and h < height:
                top, left = int(torch.randint(0, height - h + 1, ())), int(torch.randint(0, width - w + 1, ()))
                image = image.clone()
                image[:, top : top + h, left : left + w] = torch.tensor(REID_ERASING_FILL).view(3, 1, 1)
                return image
        return image

    def __repr__(self) -> str:
        return f"ChannelRandomErasing(p={self.p})"


class TensorChannelExchange:
    """CAJ's ChannelExchange(gray=2) where MULT's stage one applies it, last: one of the normalised
    tensor's channels, drawn uniformly, copied into all three (the erased patch included)."""

    def __call__(self, image):
        import torch

        channel = int(torch.randint(3, ()))
        return image[channel : channel + 1].expand(3, -1, -1).clone()

    def __repr__(self) -> str:
        return "TensorChannelExchange()"


class ChannelAdapGray:
    """CAJ's infrared augmentation (Ye et al., ICCV 2021), on the normalised tensor: one of R, G or B
    copied into all three channels (a quarter of the time each), else with probability ``p`` the
    luminance grey (0.2989 R + 0.587 G + 0.114 B) in all three, else the image unchanged."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, image):
        import torch

        choice = int(torch.randint(4, ()))
        if choice < 3:
            return image[choice : choice + 1].expand(3, -1, -1).clone()
        if torch.rand(()) >= self.p:
            return image
        grey = 0.2989 * image[0] + 0.5870 * image[1] + 0.1140 * image[2]
        return grey.expand(3, -1, -1).clone()

    def __repr__(self) -> str:
        return f"ChannelAdapGray(p={self.p})"


class LinearTransform:
    """MULT's stage-one augmentation (code_for_MULT ``ChannelAug.py``), on the [0, 1] tensor before
    normalisation: with probability ``p``, rectangles drawn as ChannelRandomErasing's, each channel of one
    rescaled so that its brightest pixel becomes Beta(0.5, 0.5), one rectangle after another until some
    pixel's accumulated factor falls to ``floor`` (a patchwork of dimmed and brightened regions)."""

    def __init__(self, p: float, area: tuple[float, float] = (0.02, 0.4), min_aspect: float = 0.3, floor=1e-6):
        self.p, self.area, self.min_aspect, self.floor = p, area, min_aspect, floor

    def __call__(self, image):
        import torch

        if torch.rand(()) >= self.p or image.max() <= 0:  # a black image would never end the loop
            return image
        image, factor = image.clone(), torch.ones_like(image)
        _, height, width = image.shape
        beta = torch.distributions.Beta(0.5, 0.5)
        for _ in range(10_000):  # the release loops without a bound; a median image ends after about 11
            target = float(torch.empty(()).uniform_(*self.area)) * height * width
            aspect = float(torch.empty(()).uniform_(self.min_aspect, 1 / self.min_aspect))
            h, w = round((target * aspect) ** 0.5), round((target / aspect) ** 0.5)
            if not (w < width and h < height):
                continue
            top, left = int(torch.randint(0, height - h + 1, ())), int(torch.randint(0, width - w + 1, ()))
            for channel in range(image.shape[0]):
                patch = image[channel, top : top + h, left : left + w]
                if patch.max() > 0:
                    alpha = float(beta.sample()) / float(patch.max())
                    patch.mul_(alpha)
                    factor[channel, top : top + h, left : left + w] *= alpha
            if factor.min() <= self.floor:
                return image
        return image

    def __repr__(self) -> str:
        return f"LinearTransform(p={self.p})"


def train_transform(
    height: int,
    width: int,
    erasing: float = 0.5,
    grayscale: float = 0.0,
    channel_exchange: float = 0.0,
    erasing_style: str = "torchvision",
    channel_gray: float = 0.0,
    color_jitter: float = 0.0,
    linear: float = 0.0,
):
    """AGW's training transform with the optional steps of the methods that add them: grayscale and
    channel exchange on the image, then erasing (``erasing_style``) and ChannelAdapGray (``channel_gray``,
    the infrared images of the Cluster-Contrast-derived methods) on the normalised tensor, in the
    released order; MULT's stage one adds ColorJitter (``color_jitter`` for brightness, contrast,
    saturation and hue) after the flip and LinearTransform (``linear``) before normalisation."""
    from torchvision import transforms

    steps = [transforms.RandomGrayscale(grayscale)] if grayscale > 0 else []
    steps += [ChannelExchange(channel_exchange)] if channel_exchange > 0 else []
    steps += [
        transforms.Resize((height, width)),
        transforms.Pad(10),
        transforms.RandomCrop((height, width)),
        transforms.RandomHorizontalFlip(),
        *([transforms.ColorJitter(*(color_jitter,) * 4)] if color_jitter > 0 else []),
        transforms.ToTensor(),
        *([LinearTransform(linear)] if linear > 0 else []),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ]
    if erasing > 0:
        if erasing_style not in ERASING_STYLES:
            raise ValueError(f"erasing_style {erasing_style!r} is not one of {', '.join(ERASING_STYLES)}")
        erase = ChannelRandomErasing(erasing) if erasing_style == "channel" else transforms.RandomErasing(erasing)
        steps.append(erase)
    steps += [ChannelAdapGray(channel_gray)] if channel_gray > 0 else []
    return transforms.Compose(steps)


def mult_stage_one(height: int, width: int, erasing_style: str = "channel"):
    """MULT's released stage-one (DCL) augmentation (code_for_MULT ``dataset.py``) as (visible, infrared)
    transforms. The release feeds every visible image twice, once plain with LinearTransform 0.9 and once
    colour-jittered and channel-exchanged; vitool's one visible view takes either, with p 0.5 each (as its
    one view stands for the release's two everywhere). Erasing at 0.9; infrared colour-jittered, then
    ChannelAdapGray."""
    from torchvision import transforms

    plain = train_transform(height, width, 0.9, erasing_style=erasing_style, linear=0.9)
    jittered = train_transform(height, width, 0.9, erasing_style=erasing_style, color_jitter=0.5)
    exchanged = transforms.Compose([jittered, TensorChannelExchange()])  # released: last, on the erased tensor
    infrared = train_transform(height, width, 0.9, erasing_style=erasing_style, channel_gray=0.5, color_jitter=0.5)
    return transforms.RandomChoice([plain, exchanged]), infrared
