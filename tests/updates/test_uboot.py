"""U-Boot's environment bytes against the real tools, and RAUC's boot script, step by step.

The bytes are checked against U-Boot's own `mkenvimage` and libubootenv's
`fw_printenv`/`fw_setenv` (what RAUC runs on the till). The boot script's behaviour is
RAUC's documented one (contrib/uboot.sh): first slot in BOOT_ORDER with attempts left
loses one and boots; none left resets the counters to 3 and resets the board.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from drivers import uboot

ENV = {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "2", "bootcmd": "run x; boot"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"needs {name} (Debian: u-boot-tools, libubootenv-tool)")
    return path


def test_our_bytes_are_mkenvimages_bytes(tmp_path):
    text = tmp_path / "env.txt"
    text.write_text("".join(f"{k}={ENV[k]}\n" for k in sorted(ENV)))
    image = tmp_path / "uboot.env"
    subprocess.run(
        [tool("mkenvimage"), "-s", str(uboot.ENV_SIZE), "-o", str(image), str(text)], check=True
    )
    assert uboot.encode(ENV) == image.read_bytes()
    assert uboot.decode(image.read_bytes()) == ENV


def test_fw_printenv_reads_ours_and_we_read_fw_setenv(tmp_path):
    env_file, config = tmp_path / "uboot.env", tmp_path / "fw_env.config"
    config.write_text(f"{env_file} 0x0000 {uboot.ENV_SIZE:#x}\n")
    uboot.write(env_file, ENV)
    printed = subprocess.run(
        [tool("fw_printenv"), "-c", str(config)], capture_output=True, text=True, check=True
    ).stdout
    assert dict(line.split("=", 1) for line in printed.splitlines()) == ENV
    subprocess.run([tool("fw_setenv"), "-c", str(config), "BOOT_B_LEFT", "0"], check=True)
    assert uboot.read(env_file) == ENV | {"BOOT_B_LEFT": "0"}


def test_a_damaged_environment_is_refused():
    blob = bytearray(uboot.encode(ENV))
    blob[10] ^= 0xFF
    with pytest.raises(uboot.EnvError, match="CRC"):
        uboot.decode(bytes(blob))
    with pytest.raises(uboot.EnvError):
        uboot.encode({"BAD=NAME": "1"})


def test_a_fresh_card_boots_a_and_takes_an_attempt_off():
    slot, env = uboot.choose_slot({})
    assert slot == "A"
    assert env == {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "2", "BOOT_B_LEFT": "3"}


def test_a_new_slot_gets_three_tries_then_the_old_one_boots():
    env = uboot.set_primary({"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0"}, "B")
    assert env["BOOT_ORDER"] == "B A" and env["BOOT_B_LEFT"] == "3"
    booted = []
    for _ in range(4):  # never marked good: it crashes each time
        slot, env = uboot.choose_slot(env)
        booted.append(slot)
    assert booted == ["B", "B", "B", "A"]
    assert uboot.primary(env) == "A" and not uboot.slot_good(env, "B")


def test_mark_good_gives_the_attempts_back():
    env = uboot.set_primary(uboot.choose_slot({})[1], "B")
    slot, env = uboot.choose_slot(env)
    assert (slot, env["BOOT_B_LEFT"]) == ("B", "2")
    env = uboot.mark_good(env, "B")
    assert env["BOOT_B_LEFT"] == "3"
    for _ in range(10):  # a system that says so at every boot keeps booting
        slot, env = uboot.choose_slot(env)
        env = uboot.mark_good(env, slot)
        assert slot == "B"


def test_mark_bad_takes_the_slot_out_of_the_order():
    env = uboot.mark_bad({"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "2"}, "B")
    assert env == {"BOOT_ORDER": "A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0"}
    assert uboot.choose_slot(env)[0] == "A"


def test_no_slot_left_resets_the_counters_and_the_board():
    env = {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "0"}
    slot, env = uboot.choose_slot(env)
    assert slot is None and env["BOOT_A_LEFT"] == env["BOOT_B_LEFT"] == "3"
    assert uboot.choose_slot(env)[0] == "B"  # after the reset: the order's first again


def test_attempts_read_as_rauc_reads_them():
    # RAUC parses the counter as hex (g_ascii_strtoull(..., 16)); setexpr writes hex
    assert uboot.attempts({"BOOT_A_LEFT": "a"}, "A") == 10
    assert uboot.attempts({"BOOT_A_LEFT": "zz"}, "A") == 0
    assert uboot.attempts({}, "A") == 0


# -- boot.scr in real U-Boot (Debian's u-boot-qemu under qemu-system-aarch64) ------------------
UBOOT_QEMU = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"


def uboot_card(tmp_path, env: dict[str, str] | None):
    """A small card: FAT p1 with boot.scr (and ``env`` as uboot.env), two empty slots."""
    import os

    if not os.path.exists(UBOOT_QEMU) or shutil.which("qemu-system-aarch64") is None:
        pytest.skip("needs u-boot-qemu and qemu-system-arm (Debian)")
    cmd = tmp_path / "boot.cmd"
    cmd.write_text(uboot.boot_script("7111b0c5"))
    scr, fat, card = tmp_path / "boot.scr", tmp_path / "boot.img", tmp_path / "card.img"
    subprocess.run([tool("mkimage"), "-q", "-A", "arm64", "-O", "linux", "-T", "script",
                    "-C", "none", "-d", str(cmd), str(scr)], check=True)  # fmt: skip
    subprocess.run([tool("mkfs.vfat"), "-C", str(fat), "16384"], check=True, capture_output=True)
    subprocess.run([tool("mcopy"), "-i", str(fat), str(scr), "::/boot.scr"], check=True)
    if env is not None:
        uboot.write(tmp_path / "uboot.env", env)
        subprocess.run(
            [tool("mcopy"), "-i", str(fat), str(tmp_path / "uboot.env"), "::/uboot.env"], check=True
        )
    with card.open("wb") as f:
        f.truncate(40 * 2**20)
    table = "label: dos\nlabel-id: 0x7111b0c5\nstart=2048, size=32768, type=c, bootable\n"
    table += "start=34816, size=20480, type=83\nstart=55296, size=20480, type=83\n"
    subprocess.run([tool("sfdisk"), "-q", str(card)], input=table, text=True, check=True)
    subprocess.run(["dd", f"if={fat}", f"of={card}", "bs=1M", "seek=1", "conv=notrunc",
                    "status=none"], check=True)  # fmt: skip
    return card, f"{card}@@1M"


def run_uboot(card, fat) -> tuple[str, dict[str, str]]:
    """One power-on: what boot.scr printed, and the uboot.env it left."""
    done = subprocess.run(
        ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-m", "512", "-nographic",
         "-monitor", "none", "-no-reboot", "-nic", "none", "-bios", UBOOT_QEMU,
         "-drive", f"file={card},format=raw,if=none,id=c", "-device", "virtio-blk-pci,drive=c"],
        capture_output=True, timeout=300,
    )  # fmt: skip
    said = [ln for ln in done.stdout.decode(errors="replace").splitlines() if "tillbox:" in ln]
    out = card.parent / "out.env"
    subprocess.run([tool("mcopy"), "-o", "-i", fat, "::/uboot.env", str(out)], check=True)
    return "\n".join(said), uboot.read(out)


def test_boot_scr_in_real_uboot_follows_choose_slot(tmp_path):
    # B was just installed (RAUC: primary B, 3 attempts) and never marked good; both
    # slots are empty here, so each boot fails at once, which is a boot that never came
    # up: the script gives the slot no further attempts (an unloadable slot).
    env = {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3", "tillbox_console": "x"}
    card, fat = uboot_card(tmp_path, env)
    said, after = run_uboot(card, fat)
    assert "tillbox: booting slot B (partition 3)" in said, said
    slot, expected = uboot.choose_slot(env)
    assert slot == "B"
    assert "slot B does not boot" in said
    assert after["BOOT_ORDER"] == "B A" and after["BOOT_B_LEFT"] == "0"
    assert after["BOOT_A_LEFT"] == expected["BOOT_A_LEFT"] == "3"
    assert after["tillbox_console"] == "x"  # the machine's own variables are kept
    assert uboot.choose_slot(after)[0] == "A"
    said, after = run_uboot(card, fat)  # B is out of attempts: A, as choose_slot says
    assert "tillbox: booting slot A (partition 2)" in said, said
    said, after = run_uboot(card, fat)  # none left: counters reset, board reset
    assert "no slot has attempts left" in said, said
    assert (after["BOOT_A_LEFT"], after["BOOT_B_LEFT"]) == ("3", "3")


def test_boot_scr_on_a_new_card_starts_with_slot_a(tmp_path):
    card, fat = uboot_card(tmp_path, None)  # no uboot.env yet: the script writes it
    said, after = run_uboot(card, fat)
    assert "tillbox: booting slot A (partition 2)" in said, said
    assert after["BOOT_ORDER"] == "A B" and after["BOOT_B_LEFT"] == "3"
    assert after["tillbox_console"] == uboot.DEFAULT_CONSOLE


def test_cmdline_txt_still_counts_and_the_slot_root_comes_last():
    """On a Pi the firmware hands U-Boot cmdline.txt in the device tree's /chosen
    bootargs; boot.scr keeps it, first, so a technician's video= or rotation still
    applies while the slot's root= (the kernel takes the last one) decides the root."""
    script = uboot.boot_script("7111b0c5")
    lines = script.splitlines()
    reads = next(i for i, ln in enumerate(lines) if "/chosen bootargs" in ln)
    assert "fdt get value tillbox_fwargs /chosen bootargs" in lines[reads]
    final = next(ln for ln in lines if ln.startswith("setenv bootargs "))
    assert lines.index(final) > reads
    words = final.split()
    assert words[2] == "${tillbox_fwargs}"
    assert words.index("${tillbox_fwargs}") < words.index("${tillbox_console}")
    assert words.index("${tillbox_fwargs}") < words.index("root=PARTUUID=7111b0c5-0${tillbox_part}")
