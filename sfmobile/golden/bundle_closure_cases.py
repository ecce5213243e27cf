"""The bundle corpus's closure-rule cases (export/README.md "Closure rules"): one per rule a folder
of placeholder files can break. Rules 8 and 9 need real model files and are not here."""

from collections.abc import Callable

from sfmobile.golden.bundle_manifests import (
    DECODER_TILE,
    ENCODER,
    FILES,
    Raw,
    Symlink,
    setter,
    with_decoder_tile,
    with_encoder,
)


def escape_to_outside(data: dict) -> None:
    data["components"]["unet"]["files"] = ["../outside-unet.onnx"]
    data["files"]["../outside-unet.onnx"] = data["files"].pop("unet.onnx")


def listed_as(name: str, entry_of: str) -> Callable[[dict], None]:
    """List `name` in files with the size and sha256 of the base file `entry_of`."""

    def mutate(data: dict) -> None:
        data["files"][name] = dict(data["files"][entry_of])

    return mutate


def then(*mutations: Callable[[dict], None]) -> Callable[[dict], None]:
    def mutate(data: dict) -> None:
        for mutation in mutations:
            mutation(data)

    return mutate


NOT_RELATIVE = "is not a relative, normalised path inside the bundle"
# One case per closure rule (export/README.md) a folder of placeholder files can show.
CLOSURE_CASES = (
    ("path-escapes-to-existing-file", "rule 1: '../' to a file that exists beside the bundle",
     escape_to_outside, {}, f"'../outside-unet.onnx' {NOT_RELATIVE}"),
    ("path-dot-segment", "rule 1: './unet.onnx'", setter("components/unet/files/0", "./unet.onnx"),
     {}, "manifest invalid at components/unet/files/0"),
    ("path-double-slash", "rule 1: an empty segment",
     setter("tokenizer/vocab", "tokenizer//vocab.json"), {}, "manifest invalid at tokenizer/vocab"),
    ("path-trailing-slash", "rule 1: a files key ending in '/'",
     listed_as("tokenizer/", "tokenizer/vocab.json"), {}, f"'tokenizer/' {NOT_RELATIVE}"),
    ("path-backslash", "rule 1: a Windows separator",
     setter("tokenizer/merges", "tokenizer\\merges.txt"), {},
     "manifest invalid at tokenizer/merges"),
    ("path-drive-letter", "rule 1: a drive letter", listed_as("C:/unet.onnx", "unet.onnx"), {},
     f"'C:/unet.onnx' {NOT_RELATIVE}"),
    ("path-absolute", "rule 1: a leading '/'",
     setter("components/text_encoder/files/0", "/text_encoder.onnx"), {},
     "manifest invalid at components/text_encoder/files/0"),
    ("path-control-character", "rule 1: a trailing newline (Python's $ would let it through)",
     setter("components/decoder/files/0", "decoder.onnx\n"), {},
     "manifest invalid at components/decoder/files/0"),
    ("files-lists-manifest", "rule 2: files never lists manifest.json",
     listed_as("manifest.json", "unet.onnx"), {}, "'manifest.json' is not allowed here"),
    ("component-file-repeated", "rule 2: a component lists a path twice",
     setter("components/unet/files", ["unet.onnx", "unet.onnx"]), {},
     "manifest invalid at components/unet/files"),
    ("unlisted-component-file", "rule 3: an external-data file present but not in files",
     setter("components/unet/files", ["unet.onnx", "unet.onnx.data"]),
     {"unet.onnx.data": b"external data\n"},
     "components.unet.files[1] 'unet.onnx.data' is not listed in files"),
    ("unlisted-tokenizer-file", "rule 3: a vocabulary present but not in files",
     setter("tokenizer/vocab", "tokenizer/vocab2.json"),
     {"tokenizer/vocab2.json": FILES["tokenizer/vocab.json"]},
     "tokenizer.vocab 'tokenizer/vocab2.json' is not listed in files"),
    ("symlink-leaves-bundle", "rule 4: unet.onnx links to a file beside the bundle (same bytes)",
     None, {"unet.onnx": Symlink("../outside-unet.onnx")},
     "'unet.onnx' resolves outside the bundle folder"),
    ("valid-symlink-inside", "rule 4: a symlink to a file inside the bundle is followed",
     None,
     {"blobs/decoder.bin": FILES["decoder.onnx"], "decoder.onnx": Symlink("blobs/decoder.bin")},
     ""),
    ("empty-tensor-shape", "schema: a shape has at least one dimension",
     setter("components/text_encoder/outputs/0/shape", []), {},
     "manifest invalid at components/text_encoder/outputs/0/shape"),
    ("geometry-two-factors", "rule 6: height x8, width x9", setter("image/width", 72), {},
     "image 64x72 is not latent 8x8 times one integer factor"),
    ("geometry-not-a-multiple", "rule 6: 60 is no multiple of 8", setter("image/height", 60), {},
     "image 60x64 is not latent 8x8 times one integer factor"),
    ("latent-unet-input", "rule 7: the UNet's sample is not the latent",
     setter("components/unet/inputs/0/shape", [2, 4, 8, 16]), {},
     "components.unet.inputs[0].shape [2, 4, 8, 16] is not [batch, 4, 8, 8]"),
    ("latent-decoder-input", "rule 7: the decoder's input has 3 channels",
     setter("components/decoder/inputs/0/shape", [1, 3, 8, 8]), {},
     "components.decoder.inputs[0].shape [1, 3, 8, 8] is not [batch, 4, 8, 8]"),
    ("encoder-input-not-image", "rule 7: the encoder takes the image",
     with_encoder(setter("components/encoder/inputs/0/shape", [1, 3, 32, 32])), ENCODER,
     "components.encoder.inputs[0].shape [1, 3, 32, 32] is not [1, 3, 64, 64]"),
    ("encoder-output-not-latent", "rule 7: the encoder gives the latent",
     with_encoder(setter("components/encoder/outputs/0/shape", [1, 4, 4, 4])), ENCODER,
     "components.encoder.outputs[0].shape [1, 4, 4, 4] is not [1, 4, 8, 8]"),
    ("decoder-tile-not-square", "rule 7: the tile decoder takes a square latent tile",
     with_decoder_tile(setter("components/decoder_tile/inputs/0/shape", [1, 4, 4, 2])),
     DECODER_TILE, "components.decoder_tile.inputs[0].shape [1, 4, 4, 2] is not a square"),
    ("decoder-tile-larger-than-latent", "rule 7: a tile no larger than the latent",
     with_decoder_tile(setter("components/decoder_tile/inputs/0/shape", [1, 4, 16, 16])),
     DECODER_TILE, "components.decoder_tile.inputs[0].shape [1, 4, 16, 16] is not a square"),
    ("decoder-tile-output", "rule 7: the tile decoder gives factor x the tile",
     with_decoder_tile(setter("components/decoder_tile/outputs/0/shape", [1, 3, 16, 16])),
     DECODER_TILE, "components.decoder_tile.outputs[0].shape [1, 3, 16, 16] is not [1, 3, 32, 32]"),
    ("tokenizer-start-id", "rule 10: start_id is not the vocabulary's <|startoftext|>",
     setter("tokenizer/start_id", 1), {}, "tokenizer.start_id/end_id 1/49407 differ"),
    ("tokenizer-pad-id", "rule 10: pad_id is no id of the vocabulary",
     setter("tokenizer/pad_id", 60000), {}, "tokenizer.pad_id 60000 is not in"),
    ("json-nan", "rule 11: the NaN literal", setter("latent/scaling_factor", float("nan")), {},
     "manifest invalid at latent/scaling_factor"),
    ("json-infinity", "rule 11: the -Infinity literal",
     then(setter("scheduler/beta_end", float("-inf")), setter("image/height", float("inf"))), {},
     "manifest invalid at scheduler/beta_end"),
    ("json-not-utf8", "rule 11: a byte 0xff in a string", setter("created_by/source",
     Raw('"corpus\udcff"')), {}, "manifest.json: not valid JSON"),
    ("json-uppercase-literal", "rule 11: TRUE is not true", setter("guidance/input", Raw("TRUE")),
     {}, "not valid JSON"),
    ("json-control-in-string", "rule 11: a raw tab inside a string",
     setter("created_by/source", Raw('"a\tb"')), {}, "not valid JSON"),
    ("json-quote-escape", "rule 11: the escape \\' (JSON has none)",
     setter("created_by/source", Raw('"it\\\'s"')), {}, "not valid JSON"),
    ("json-number-overflow", "rule 11: 1e400 is no double (Python's parser makes it inf)",
     setter("scheduler/clip_sample_range", Raw("1e400")), {},
     "manifest invalid at scheduler/clip_sample_range"),
)  # fmt: skip
