package dev.sfmobile.core

import java.io.File
import java.io.IOException
import java.security.MessageDigest

/** How much of each file [Bundle.open] checks: sizes and sha256, or sizes only (a fast start). */
enum class Verification { SHA256, SIZES }

/**
 * An exported bundle folder (export/README.md): manifest.json plus model and tokenizer files,
 * checked on open as sfmobile/bundle.py's read_bundle checks it.
 *
 * The bundle is closed: every path in the manifest is relative, normalised (no `.`, `..` or
 * empty segment, no backslash) and resolves, symlinks included, inside the bundle folder; every
 * file a component or the tokenizer uses is listed in `files`; every listed file exists with
 * the listed size and (with [Verification.SHA256]) sha256.
 */
class Bundle private constructor(val dir: File, val manifest: Manifest) {
    /** The model file of a component (`text_encoder`, `unet`, `decoder`). */
    fun componentFile(name: String): File {
        val spec = manifest.components[name] ?: throw BundleException("$dir: no component '$name' in the manifest")
        return File(dir, spec.files.first())
    }

    /** Every file the manifest lists, in bytes (what loading the bundle costs on disk). */
    fun totalBytes(): Long = manifest.files.values.sumOf { it.bytes }

    /** The bundle's tokenizer: the manifest's vocab and merges, the pad token from their folder. */
    fun tokenizer(warn: (String) -> Unit = {}): Tokenizer {
        val vocab = File(dir, manifest.tokenizer.vocab)
        return TokenizerFiles.read(vocab, File(dir, manifest.tokenizer.merges), vocab.parentFile, warn)
    }

    companion object {
        const val MANIFEST = "manifest.json"
        private val TOKENIZER_EXTRAS = listOf("special_tokens_map.json", "tokenizer_config.json")

        fun open(
            dir: File,
            verify: Verification = Verification.SHA256,
        ): Bundle {
            val manifestFile = File(dir, MANIFEST)
            if (!manifestFile.isFile) throw BundleException("$dir: not a bundle (no $MANIFEST)")
            val text =
                try {
                    manifestFile.readText()
                } catch (error: IOException) {
                    throw BundleException("$manifestFile: not readable (${error.message})")
                }
            val manifest = Manifest.parse(text, manifestFile.path)
            checkClosed(dir, manifest, manifestFile)
            for ((name, expected) in manifest.files) checkFile(File(dir, name), expected, verify)
            return Bundle(dir, manifest)
        }

        /** Every manifest path inside the folder, and every file a runtime reads listed in `files`. */
        private fun checkClosed(
            dir: File,
            manifest: Manifest,
            manifestFile: File,
        ) {
            val root =
                try {
                    dir.canonicalFile
                } catch (error: IOException) {
                    throw BundleException("$dir: cannot resolve the bundle folder (${error.message})")
                }
            val used = ArrayList<Pair<String, String>>() // (manifest field, path)
            for ((name, spec) in manifest.components) spec.files.forEachIndexed { i, f -> used += "components/$name/files/$i" to f }
            used += "tokenizer/vocab" to manifest.tokenizer.vocab
            used += "tokenizer/merges" to manifest.tokenizer.merges
            for (name in manifest.files.keys) checkInside(root, "files/$name", name, manifestFile)
            for ((field, path) in used) checkInside(root, field, path, manifestFile)
            val tokenizerFolder = manifest.tokenizer.vocab.substringBeforeLast('/', "")
            for (extra in TOKENIZER_EXTRAS) {
                val path = if (tokenizerFolder.isEmpty()) extra else "$tokenizerFolder/$extra"
                if (File(dir, path).exists()) used += "tokenizer ($extra)" to path
            }
            for ((field, path) in used) {
                if (path !in manifest.files) throw BundleException("$manifestFile: $field '$path' is not listed in files")
            }
        }

        private fun checkInside(
            root: File,
            field: String,
            path: String,
            manifestFile: File,
        ) {
            val segments = path.split('/')
            val normalised =
                path.isNotEmpty() && !path.startsWith("/") && '\\' !in path && ':' !in segments.first() &&
                    segments.none { it.isEmpty() || it == "." || it == ".." }
            if (!normalised) {
                throw BundleException("$manifestFile: $field '$path' is not a normalised relative path inside the bundle")
            }
            val resolved =
                try {
                    File(root, path).canonicalFile
                } catch (error: IOException) {
                    throw BundleException("$manifestFile: $field '$path' cannot be resolved (${error.message})")
                }
            if (!resolved.path.startsWith(root.path + File.separator)) {
                throw BundleException("$manifestFile: $field '$path' resolves outside the bundle folder (to $resolved)")
            }
        }

        private fun checkFile(
            file: File,
            expected: FileEntry,
            verify: Verification,
        ) {
            if (!file.isFile) throw BundleException("$file: missing from the bundle")
            val size = file.length()
            if (size != expected.bytes) throw BundleException("$file: size $size bytes, manifest says ${expected.bytes}")
            if (verify == Verification.SHA256 && sha256Of(file) != expected.sha256) {
                throw BundleException("$file: sha256 does not match the manifest (file changed)")
            }
        }

        /** Lowercase hex sha256 of a file, read in 1 MiB chunks. */
        fun sha256Of(file: File): String {
            val digest = MessageDigest.getInstance("SHA-256")
            file.inputStream().use { stream ->
                val buffer = ByteArray(1 shl 20)
                while (true) {
                    val read = stream.read(buffer)
                    if (read < 0) break
                    digest.update(buffer, 0, read)
                }
            }
            return digest.digest().joinToString("") { "%02x".format(it) }
        }
    }
}
