"""ha-crmd: cluster resource manager daemon (DC election, CIB, transitions, LRM) — a later issue."""
import sys


def main(argv=None) -> int:
    print("ha-crmd: the CRM daemon is not part of this release yet; "
          "the policy engine is available offline as `hactl simulate`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
