from peftbench.cli import main

main()
